//! Asking the terminal what it can draw. One burst of queries goes out (kitty graphics,
//! XTVERSION, cell and text-area size in pixels, primary device attributes) and ends with a
//! status report every terminal answers, so the replies are read in one round trip and a
//! terminal that ignores a query costs no timeout. Parsing is pure ([`Answers::parse`]) and
//! tested with replies recorded from real terminals.

use std::time::{Duration, Instant};

/// What the terminal said about itself. Anything it did not answer stays `false` / `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// It answered the kitty graphics query with OK.
    pub kitty_graphics: bool,
    /// Its primary device attributes list 4 (sixel graphics).
    pub sixel: bool,
    /// Its XTVERSION reply, e.g. `kitty(0.26.5)` or `XTerm(379)`.
    pub version: Option<String>,
    /// Cell size in pixels (width, height), from `CSI 16 t`.
    pub cell_px: Option<(u16, u16)>,
    /// Text area in pixels (width, height), from `CSI 14 t`.
    pub text_area_px: Option<(u16, u16)>,
    /// The closing status report arrived: every reply before it has been read.
    pub complete: bool,
}

/// The queries, in the order the replies are expected. The kitty graphics query comes
/// before the device attributes, as the kitty protocol's specification advises: a terminal
/// that answers the attributes but not the graphics query does not speak the protocol.
const QUERIES: &[&str] = &[
    "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\",
    "\x1b[>q",
    "\x1b[16t",
    "\x1b[14t",
    "\x1b[c",
    "\x1b[5n",
];

/// The bytes to write: the queries, wrapped for tmux's passthrough when inside tmux (the
/// outer terminal answers then, which is the one that draws).
pub fn query(tmux: bool) -> String {
    let all: String = QUERIES.concat();
    if tmux {
        format!("\x1bPtmux;{}\x1b\\", all.replace('\x1b', "\x1b\x1b"))
    } else {
        all
    }
}

impl Answers {
    /// Reads every reply it recognises out of `bytes`; other bytes (keys typed meanwhile,
    /// replies it does not know) are skipped.
    pub fn parse(bytes: &[u8]) -> Answers {
        let mut answers = Answers::default();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != 0x1b || i + 1 >= bytes.len() {
                i += 1;
                continue;
            }
            i = match bytes[i + 1] {
                b'[' => answers.csi(bytes, i + 2),
                b'_' | b'P' => answers.string(bytes, i + 1),
                _ => i + 1,
            };
        }
        answers
    }

    /// A CSI reply starting at `start` (after `ESC [`); returns where it ends.
    fn csi(&mut self, bytes: &[u8], start: usize) -> usize {
        let Some(len) = bytes[start..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))
        else {
            return bytes.len();
        };
        let params = String::from_utf8_lossy(&bytes[start..start + len]);
        let numbers: Vec<u16> = params
            .trim_start_matches('?')
            .split(';')
            .filter_map(|p| p.parse().ok())
            .collect();
        match (bytes[start + len], numbers.as_slice()) {
            (b'c', [_, attributes @ ..]) if params.starts_with('?') => {
                self.sixel = attributes.contains(&4);
            }
            (b't', [6, h, w]) if *w > 0 && *h > 0 => self.cell_px = Some((*w, *h)),
            (b't', [4, h, w]) if *w > 0 && *h > 0 => self.text_area_px = Some((*w, *h)),
            (b'n', [0]) => self.complete = true,
            _ => {}
        }
        start + len + 1
    }

    /// An APC (`ESC _`) or DCS (`ESC P`) reply starting at `start` (at `_` or `P`), ended by
    /// `ESC \`; returns where it ends.
    fn string(&mut self, bytes: &[u8], start: usize) -> usize {
        let body_start = start + 1;
        let Some(len) = bytes[body_start..].windows(2).position(|w| w == b"\x1b\\") else {
            return bytes.len();
        };
        let body = String::from_utf8_lossy(&bytes[body_start..body_start + len]);
        if bytes[start] == b'_' {
            // `G i=31;OK`: the graphics query's reply.
            if let Some(rest) = body.strip_prefix('G')
                && rest.split(';').nth(1).is_some_and(|m| m.starts_with("OK"))
            {
                self.kitty_graphics = true;
            }
        } else if let Some(version) = body.strip_prefix(">|") {
            self.version = Some(crate::sanitize::sanitize(version));
        }
        body_start + len + 2
    }
}

/// Writes the queries to the terminal and reads the replies until the closing status
/// report, or `timeout`. The terminal must be in raw mode, and nothing else may be reading
/// its input meanwhile.
#[cfg(unix)]
pub fn ask(tmux: bool, timeout: Duration) -> std::io::Result<Answers> {
    use rustix::event::{PollFd, PollFlags, poll};
    use std::io::IsTerminal;
    use std::io::Write;
    use std::os::fd::AsFd;
    let mut out = std::io::stdout();
    out.write_all(query(tmux).as_bytes())?;
    out.flush()?;
    // The replies come on the terminal's input: standard input, or /dev/tty when that is
    // redirected (crossterm then reads keys from /dev/tty too).
    let tty;
    let stdin = if std::io::stdin().is_terminal() {
        rustix::stdio::stdin()
    } else {
        tty = std::fs::File::open("/dev/tty")?;
        tty.as_fd()
    };
    let deadline = Instant::now() + timeout;
    let mut replies = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        if poll(&mut fds, left.as_millis().min(i32::MAX as u128) as i32)? == 0 {
            break;
        }
        // rustix's read, not std's: no user-space buffer that poll would not see.
        let n = rustix::io::read(stdin, &mut buf)?;
        if n == 0 {
            break;
        }
        replies.extend_from_slice(&buf[..n]);
        if Answers::parse(&replies).complete {
            break;
        }
    }
    let answers = Answers::parse(&replies);
    tracing::debug!(replies = ?String::from_utf8_lossy(&replies), ?answers, "terminal replies");
    Ok(answers)
}

#[cfg(not(unix))]
pub fn ask(_tmux: bool, _timeout: Duration) -> std::io::Result<Answers> {
    Ok(Answers::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xterm_vt340_without_window_ops() {
        // xterm -ti vt340, default resources: no reply to 14t / 16t, no kitty graphics.
        let a = Answers::parse(b"\x1bP>|XTerm(379)\x1b\\\x1b[?63;1;2;4;6;9;15;16;22;28;29c\x1b[0n");
        assert!(a.sixel && !a.kitty_graphics && a.complete);
        assert_eq!(a.version.as_deref(), Some("XTerm(379)"));
        assert_eq!((a.cell_px, a.text_area_px), (None, None));
    }

    #[test]
    fn kitty_0_26() {
        let a = Answers::parse(
            b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;20;10t\x1b[4;600;800t\x1b[?62;c\x1b[0n",
        );
        assert!(a.kitty_graphics && !a.sixel && a.complete);
        assert_eq!(a.version.as_deref(), Some("kitty(0.26.5)"));
        assert_eq!(a.cell_px, Some((10, 20)));
        assert_eq!(a.text_area_px, Some((800, 600)));
    }

    #[test]
    fn a_terminal_without_graphics_and_stray_keys() {
        let a = Answers::parse(b"jj\x1b[?1;2c\x1b_Gi=31;ENOTSUPPORTED:x\x1b\\k\x1b[0n");
        assert!(!a.sixel && !a.kitty_graphics && a.complete);
    }

    #[test]
    fn truncated_replies_do_not_panic() {
        for bytes in [
            &b"\x1b"[..],
            b"\x1b[",
            b"\x1b[6;20",
            b"\x1bP>|kit",
            b"\x1b_G",
            b"\x1b[?",
        ] {
            assert!(!Answers::parse(bytes).complete);
        }
        // Escapes inside a version string are made harmless.
        let a = Answers::parse(b"\x1bP>|evil\x07\x1b\\");
        assert!(!a.version.unwrap().contains('\x07'));
    }

    #[test]
    fn tmux_wraps_and_doubles_escapes() {
        let q = query(true);
        assert!(q.starts_with("\x1bPtmux;\x1b\x1b_G") && q.ends_with("\x1b\x1b[5n\x1b\\"));
    }
}
