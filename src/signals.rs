//! The termination signals (SIGINT, SIGTERM, SIGHUP), recorded and never acted on in the
//! handler: whoever polls cancels, saves and restores the terminal, then exits with the
//! shell's status for the signal, 128 + its number (130, 143, 129).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Which termination signal arrived last (if any), and a flag raised by every one of them.
#[derive(Debug, Clone)]
pub struct Termination {
    last: Arc<AtomicUsize>,
    raised: Arc<AtomicBool>,
}

impl Termination {
    /// Starts recording. Where a handler cannot be installed, that signal keeps its default
    /// action (the process ends), which is what it would do without snowscope's handling.
    pub fn install() -> Self {
        let term = Termination {
            last: Arc::new(AtomicUsize::new(0)),
            raised: Arc::new(AtomicBool::new(false)),
        };
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            let _ = signal_hook::flag::register_usize(signal, term.last.clone(), signal as usize);
            let _ = signal_hook::flag::register(signal, term.raised.clone());
        }
        term
    }

    /// The flag every termination signal raises (for `cancel` parameters).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.raised.clone()
    }

    /// Lowers the flag; true when it was raised since the last call.
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::Relaxed)
    }

    /// The last signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            signal => i32::try_from(signal).ok(),
        }
    }
}
