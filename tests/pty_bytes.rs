//! Bytes the explorer writes to its terminal per key press, for each preview protocol: the
//! cost of a selection change over a slow link (SSH at 1 Mbit/s moves some 120 kB a
//! second). The real binary runs on a pseudo-terminal whose every output byte is counted.
//!
//! It checks that nothing already on screen is sent again (a key that changes no picture
//! costs a few hundred bytes), that a burst of keys (a held `j`) sends the pictures of the
//! last row only, and that kitty, which keeps images, shows one again for a few bytes.
//! It prints a table of bytes per key press; `--nocapture` shows it. The images are
//! generated; `SNOWSCOPE_PTY_IMAGES=DIR` measures a folder of your own instead (photos
//! compress better than the generated noise).

use image::{Rgb, RgbImage};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A program on a pseudo-terminal, its output counted.
struct Pty {
    child: Child,
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
}

/// Columns, rows, and the pixel size the terminal reports (a 10x20 cell).
const COLS: u16 = 140;
const ROWS: u16 = 44;

impl Pty {
    fn spawn(cmd: &mut Command) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: COLS * 10,
            ws_ypixel: ROWS * 20,
        };
        // SAFETY: openpty writes two descriptors into the given integers.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let tty = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(tty(&slave))
            .stdout(tty(&slave))
            .stderr(tty(&slave));
        // SAFETY: between fork and exec only async-signal-safe calls: a new session, with
        // the pseudo-terminal (standard input) as its controlling terminal.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start snowscope");
        drop(slave);
        let master = std::fs::File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), output.clone());
        let mut answer = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut answered = false;
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut out = sink.lock().unwrap();
                out.extend_from_slice(&buf[..n]);
                // Answer the graphics probe's closing status report as a terminal would,
                // so the probe ends at once (the cell size then comes from the tty).
                if !answered && out.windows(4).any(|w| w == b"\x1b[5n") {
                    answered = true;
                    let _ = answer.write_all(b"\x1b[0n");
                }
            }
        });
        Pty {
            child,
            master,
            output,
        }
    }

    fn len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    fn contains(&self, needle: &str) -> bool {
        let out = self.output.lock().unwrap();
        out.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    fn keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until nothing has been written for `quiet`, and returns the bytes written
    /// since `from`.
    fn settle(&self, from: usize, quiet: Duration) -> usize {
        let start = Instant::now();
        let mut last = (self.len(), Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(25));
            let now = self.len();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= quiet {
                return now - from;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the output never settled"
            );
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Thirty photo-like images (gradients, texture and noise), 320x240, so that pictures
/// cost what photos would, and a held key has rows to go through.
fn write_images(dir: &std::path::Path) {
    for i in 0..30u32 {
        let mut seed = 0x9e37_79b9u32.wrapping_mul(i + 1);
        let img = RgbImage::from_fn(320, 240, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed % 24) as i32 - 12;
            let wave = ((x as f32 / (9.0 + i as f32)).sin() * 40.0) as i32;
            let c = |base: i32| (base + wave + noise).clamp(0, 255) as u8;
            Rgb([
                c((x / 2 + i * 25) as i32),
                c((y / 2) as i32 + 40),
                c(160 - (i * 15) as i32),
            ])
        });
        img.save(dir.join(format!("photo{i}.png"))).unwrap();
    }
}

struct Cost {
    protocol: &'static str,
    /// Mean bytes per `j` pressed alone (pictures change).
    step: usize,
    /// Mean bytes per `k` back to rows already shown.
    back: usize,
    /// Bytes for a key that changes no picture (`l`: focus the next column).
    still: usize,
    /// Mean bytes per key of a burst of `BURST` `j`s.
    burst: usize,
}

const BURST: usize = 20;
/// Longer than the explorer's settle time, so each lone key's pictures are drawn.
const QUIET: Duration = Duration::from_millis(700);

fn measure(protocol: &'static str, images: &std::path::Path, cache: &std::path::Path) -> Cost {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snowscope"));
    cmd.arg("explore")
        .arg(images)
        .args(["--preview", protocol, "--cache-dir"])
        .arg(cache)
        .env("TERM", "xterm-256color")
        .env_remove("TMUX")
        .env_remove("TERM_PROGRAM")
        .env_remove("LC_TERMINAL")
        .env_remove("WEZTERM_EXECUTABLE");
    let mut pty = Pty::spawn(&mut cmd);
    let start = Instant::now();
    while !pty.contains("knn score") {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{protocol}: no table"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pty.settle(0, Duration::from_millis(1500));
    let each = |pty: &mut Pty, keys: &str| {
        let from = pty.len();
        pty.keys(keys);
        pty.settle(from, QUIET)
    };
    let steps: Vec<usize> = (0..3).map(|_| each(&mut pty, "j")).collect();
    let backs: Vec<usize> = (0..3).map(|_| each(&mut pty, "k")).collect();
    let still = each(&mut pty, "l");
    // A held key: repeats some 30 ms apart.
    let from = pty.len();
    for _ in 0..BURST {
        pty.keys("j");
        std::thread::sleep(Duration::from_millis(30));
    }
    let burst = pty.settle(from, QUIET);
    pty.keys("q");
    let mean = |v: &[usize]| v.iter().sum::<usize>() / v.len();
    Cost {
        protocol,
        step: mean(&steps),
        back: mean(&backs),
        still,
        burst: burst / BURST,
    }
}

#[test]
fn bytes_per_key_press_for_each_protocol() {
    let generated = tempfile::tempdir().unwrap();
    let images = match std::env::var_os("SNOWSCOPE_PTY_IMAGES") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            write_images(generated.path());
            generated.path().to_path_buf()
        }
    };
    let cache = tempfile::tempdir().unwrap();
    let costs: Vec<Cost> = ["halfblocks", "sixel", "kitty", "iterm2"]
        .into_iter()
        .map(|p| measure(p, &images, cache.path()))
        .collect();
    eprintln!("bytes written per key press ({COLS}x{ROWS} terminal, 10x20-pixel cells):");
    eprintln!(
        "protocol    j (new pictures)  k (back)  l (no picture change)  held j (per key, {BURST} keys)"
    );
    for c in &costs {
        eprintln!(
            "{:<11} {:>16}  {:>8}  {:>21}  {:>8}",
            c.protocol, c.step, c.back, c.still, c.burst
        );
    }
    for c in &costs {
        assert!(
            c.still < 2_000,
            "{}: a key that changes no picture sent {} bytes",
            c.protocol,
            c.still
        );
        // A burst sends the last row's pictures once, not one pair per key.
        assert!(
            c.burst * BURST < c.step * 3,
            "{}: {BURST} held keys cost {} bytes, one key {}",
            c.protocol,
            c.burst * BURST,
            c.step
        );
    }
    let kitty = costs.iter().find(|c| c.protocol == "kitty").unwrap();
    assert!(
        kitty.back < 2_000,
        "kitty shows a kept image again for {} bytes",
        kitty.back
    );
}
