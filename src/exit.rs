//! The process exit statuses, one list for the command line and the explorer (also in the
//! README and `snowscope --help`).

/// How a run ended, as the process reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything was ranked (or written).
    Ok,
    /// An error, or nothing to rank.
    Error,
    /// A bad command line (the argument parser's own status).
    Usage,
    /// Ranked, but some files were skipped (listed with their reasons).
    Skipped,
    /// A panic on the UI thread (Rust's own status for a panic).
    Internal,
    /// Cancelled by Ctrl-C, SIGTERM or SIGHUP; finished features stay in the cache.
    Cancelled,
}

impl ExitStatus {
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Error => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Skipped => 3,
            ExitStatus::Internal => 101,
            ExitStatus::Cancelled => 130,
        }
    }

    /// `Skipped` when any file was skipped, `Ok` otherwise.
    pub fn ranked(any_skipped: bool) -> Self {
        if any_skipped {
            ExitStatus::Skipped
        } else {
            ExitStatus::Ok
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}
