//! End-to-end: the real `snowscope` binary in a real terminal (tmux), driven by keys.
//!
//! It starts the explorer on a few generated PNGs, waits for the table, sorts, filters,
//! quits, and checks that the terminal is restored (normal screen, cursor shown, mouse
//! reporting off, canonical mode and echo back on).
//!
//! It runs `snowscope explore DIR --preview halfblocks --cache-dir D`.
//! `SNOWSCOPE_E2E_BIN` runs another binary with the same command line instead.
//! Without tmux the test says so and passes (CI installs tmux).

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private tmux server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success(), "send-keys {keys:?}");
    }

    /// Waits until the screen contains `needle`; panics with the screen after `secs`.
    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                panic!("timed out waiting for {needle:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn flag(&self, name: &str) -> String {
        let out = self.cmd(&[
            "display-message",
            "-p",
            "-t",
            "e2e",
            &format!("#{{{name}}}"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn write_images(dir: &Path) {
    for i in 0..8u32 {
        let mut img = RgbImage::from_pixel(64, 64, Rgb([10, 20, 40]));
        let r = 10.0 + (i % 4) as f32 * 5.0;
        let colour = if i == 7 {
            Rgb([250, 200, 0])
        } else {
            Rgb([180 + i as u8 * 8, 210, 240])
        };
        for (x, y, p) in img.enumerate_pixels_mut() {
            let (dx, dy) = (x as f32 - 31.5, y as f32 - 31.5);
            let arms = (6.0 * dy.atan2(dx)).cos().abs();
            if (dx * dx + dy * dy).sqrt() <= r * (0.6 + 0.4 * arms) || (i == 7 && x < 10) {
                *p = colour;
            }
        }
        img.save(dir.join(format!("flake{:02}.png", i + 1)))
            .unwrap();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn explorer_starts_sorts_filters_and_restores_the_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux); the e2e test needs it");
        return;
    }
    let bin = std::env::var_os("SNOWSCOPE_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_snowscope")));
    let images = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(images.path());
    let tmux = Tmux {
        socket: format!("snowscope-e2e-{}", std::process::id()),
    };
    // After the app exits, print its exit code and the tty modes, then idle so the pane
    // stays readable.
    let script = format!(
        "{} explore {} --preview halfblocks --cache-dir {}; echo SNOWSCOPE-EXIT=$?; stty -a; sleep 600",
        shell_quote(&bin),
        shell_quote(images.path()),
        shell_quote(cache.path()),
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "120",
        "-y",
        "36",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");

    // The first run extracts features on the CPU: allow time.
    let screen = tmux.wait_for("sort: distance ↓", 300);
    eprintln!("explorer screen:\n{screen}");
    assert!(screen.contains("8/8 shown"), "{screen}");
    assert!(screen.contains("preview · halfblocks"), "{screen}");
    assert_eq!(
        tmux.flag("alternate_on"),
        "1",
        "runs in the alternate screen"
    );

    // Sort by file (second column): ascending, flake01 first.
    tmux.keys(&["2"]);
    let screen = tmux.wait_for("sort: file ↑", 10);
    let first = screen
        .lines()
        .find(|l| l.contains("flake0"))
        .unwrap_or_default();
    assert!(first.contains("flake01.png"), "{screen}");
    // Again: descending.
    tmux.keys(&["2"]);
    tmux.wait_for("sort: file ↓", 10);

    // Filter paths by regex.
    tmux.keys(&["&"]);
    tmux.keys(&["-l", "flake0[1-3]"]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("3/8 shown", 10);
    assert!(screen.contains("path ~ /flake0[1-3]/"), "{screen}");
    // Score filter, then Esc clears everything.
    tmux.keys(&["-l", ">=0"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("score >= 0", 10);
    tmux.keys(&["Escape"]);
    let screen = tmux.wait_for("8/8 shown", 10);
    assert!(screen.contains("filter: none"), "{screen}");

    // Help opens and closes.
    tmux.keys(&["?"]);
    tmux.wait_for("any key closes", 10);
    tmux.keys(&["?"]);

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("SNOWSCOPE-EXIT=", 20);
    assert!(screen.contains("SNOWSCOPE-EXIT=0"), "{screen}");
    tmux.wait_for("speed", 10);
    let screen = tmux.screen();
    eprintln!("after exit:\n{screen}");
    assert_eq!(tmux.flag("alternate_on"), "0", "left the alternate screen");
    assert_eq!(tmux.flag("cursor_flag"), "1", "cursor visible");
    assert_eq!(tmux.flag("mouse_any_flag"), "0", "mouse reporting off");
    assert_eq!(tmux.flag("mouse_button_flag"), "0", "mouse reporting off");
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(
        words.contains(&"icanon"),
        "canonical mode back on:\n{screen}"
    );
    assert!(words.contains(&"echo"), "echo back on:\n{screen}");
}

#[test]
fn without_a_terminal_it_points_to_rank() {
    let bin = std::env::var_os("SNOWSCOPE_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_snowscope")));
    let images = tempfile::tempdir().unwrap();
    write_images(images.path());
    // stdout is a pipe here.
    let out = Command::new(bin)
        .arg("explore")
        .arg(images.path())
        .args(["--preview", "none", "--no-cache"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a terminal"), "{stderr}");
    assert!(stderr.contains("snowscope rank"), "{stderr}");
    assert!(out.stdout.is_empty(), "no escape codes written to the pipe");
}
