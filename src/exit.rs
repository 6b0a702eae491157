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
    /// Cancelled by Ctrl-C (or q during extraction); finished features stay in the cache.
    Cancelled,
    /// Ended by this signal (SIGINT 2, SIGHUP 1, SIGTERM 15): the shell's 128 + number.
    Signalled(i32),
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
            // Signal numbers are small (1..=64 on Linux); anything else reads as 255.
            ExitStatus::Signalled(signal) => {
                if signal > 0 && signal < 128 {
                    128 + signal as u8
                } else {
                    255
                }
            }
        }
    }

    /// A cancelled run's status: the signal's when one ended it, else Ctrl-C's 130.
    pub fn cancelled_by(signal: Option<i32>) -> Self {
        signal.map_or(ExitStatus::Cancelled, ExitStatus::Signalled)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_give_the_shells_statuses() {
        assert_eq!(ExitStatus::Signalled(15).code(), 143);
        assert_eq!(ExitStatus::Signalled(1).code(), 129);
        assert_eq!(ExitStatus::Signalled(2).code(), 130);
        assert_eq!(ExitStatus::Signalled(-3).code(), 255);
        assert_eq!(ExitStatus::cancelled_by(None), ExitStatus::Cancelled);
        assert_eq!(ExitStatus::cancelled_by(Some(15)).code(), 143);
    }
}
