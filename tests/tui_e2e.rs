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

impl Tmux {
    /// Starts `bin ARGS` in a detached 120x36 session; after it exits the pane shows
    /// `SNOWSCOPE-EXIT=<code>` and the tty modes (`stty -a`), then idles.
    fn launch(name: &str, bin: &Path, args: &[String], env: &[(&str, &str)]) -> Tmux {
        let tmux = Tmux {
            socket: format!("snowscope-{name}-{}", std::process::id()),
        };
        let env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let script = format!(
            "{env}{} {}; echo SNOWSCOPE-EXIT=$?; stty -a; sleep 600",
            shell_quote(bin),
            args.join(" "),
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
        tmux
    }

    /// The process id of the program the pane's shell runs (its only child).
    fn app_pid(&self) -> Option<u32> {
        let shell = self.flag("pane_pid");
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// Waits for the exit line and returns the exit code and the screen after it.
    fn exit_code(&self, secs: u64) -> (i32, String) {
        self.wait_for("SNOWSCOPE-EXIT=", secs);
        let screen = self.wait_for("speed", 10);
        let code = screen
            .split("SNOWSCOPE-EXIT=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|c| c.parse().ok())
            .expect("exit code");
        (code, screen)
    }

    /// Normal screen, cursor shown, mouse reporting off, canonical mode and echo back on.
    fn assert_restored(&self, screen: &str) {
        assert_eq!(self.flag("alternate_on"), "0", "left the alternate screen");
        assert_eq!(self.flag("cursor_flag"), "1", "cursor visible");
        assert_eq!(self.flag("mouse_any_flag"), "0", "mouse reporting off");
        assert_eq!(self.flag("mouse_button_flag"), "0", "mouse reporting off");
        let words: Vec<&str> = screen.split_whitespace().collect();
        assert!(
            words.contains(&"icanon"),
            "canonical mode back on:\n{screen}"
        );
        assert!(words.contains(&"echo"), "echo back on:\n{screen}");
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

/// The binary, a folder of `write_images` and an empty cache; `None` without tmux.
fn eight_images() -> Option<(PathBuf, tempfile::TempDir, tempfile::TempDir)> {
    if !have_tmux() {
        return None;
    }
    let images = tempfile::tempdir().unwrap();
    write_images(images.path());
    Some((bin(), images, tempfile::tempdir().unwrap()))
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn explorer_starts_sorts_filters_and_restores_the_terminal() {
    let Some((bin, images, cache)) = eight_images() else {
        return;
    };
    let tmux = Tmux::launch(
        "e2e",
        &bin,
        &explore_args(images.path(), cache.path(), &[]),
        &[],
    );

    // The first run extracts features on the CPU: allow time.
    let screen = tmux.wait_for("sort: knn score ↓", 300);
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

fn bin() -> PathBuf {
    std::env::var_os("SNOWSCOPE_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_snowscope")))
}

fn have_tmux() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux); the e2e test needs it");
    }
    ok
}

/// `n` distinct small images: enough that one-image batches on one thread take seconds.
/// Images in the interruption tests: enough that extraction (one thread, batch 1) lasts a
/// few seconds, so a signal or a hang-up lands in the middle of it.
const INTERRUPTED: u32 = 800;

fn write_many(dir: &Path, n: u32) {
    for i in 0..n {
        let mut img = RgbImage::from_fn(48, 48, |x, y| {
            Rgb([(x * 5 + i) as u8, (y * 5) as u8, (i * 7 % 256) as u8])
        });
        img.put_pixel(0, 0, Rgb([(i / 256) as u8, (i % 256) as u8, 0]));
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
    }
}

/// The number of images extracted so far, from the progress gauge ("N / total").
fn gauge_done(screen: &str, total: usize) -> Option<usize> {
    let before = screen.split(&format!(" / {total}")).next()?;
    before.rsplit(' ').next()?.trim().parse().ok()
}

/// Waits until extraction is under way (some images done, not all) and returns how many
/// are done. Fails when extraction finishes first: the test would then not be testing an
/// interruption, so it needs more images.
fn wait_mid_extraction(tmux: &Tmux, total: usize) -> usize {
    let start = Instant::now();
    loop {
        let screen = tmux.screen();
        if screen.contains("sort: knn score") {
            panic!("extraction of {total} images finished before it could be interrupted");
        }
        if let Some(done) = gauge_done(&screen, total).filter(|&d| d >= 5) {
            assert!(done < total, "extraction already complete: {screen}");
            return done;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress: {screen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn explore_args(images: &Path, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "explore".to_string(),
        shell_quote(images),
        "--preview halfblocks --cache-dir".into(),
        shell_quote(cache),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A headless run on the same cache: it must find the cache intact and reuse it.
/// Returns how many images came from the cache.
fn rank_reuses_cache(images: &Path, cache: &Path) -> usize {
    let out = Command::new(bin())
        .arg("rank")
        .arg(images)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("corrupt"), "cache damaged: {stderr}");
    let plan = stderr
        .lines()
        .find(|l| l.contains("from the cache"))
        .expect("plan line");
    plan.split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{name} {pid}");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal_and_keep_finished_work() {
    if !have_tmux() {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    write_many(images.path(), INTERRUPTED);
    let slow = ["--batch-size 1 --threads 1"];
    let mut last_cache = None;
    for (round, (sig, status)) in [("TERM", 143), ("HUP", 129)].into_iter().enumerate() {
        // During extraction: cancel, save what is finished, leave with 128 + the signal's
        // number. (A fresh cache
        // each time: the check below completes the one it looks at.)
        let cache = tempfile::tempdir().unwrap();
        let tmux = Tmux::launch(
            &format!("sig{round}"),
            &bin(),
            &explore_args(images.path(), cache.path(), &slow),
            &[],
        );
        let done = wait_mid_extraction(&tmux, INTERRUPTED as usize);
        let pid = tmux.app_pid().expect("snowscope runs");
        signal(pid, sig);
        let (code, screen) = tmux.exit_code(60);
        eprintln!("SIG{sig} during extraction:\n{screen}");
        assert_eq!(code, status, "SIG{sig} cancels: {screen}");
        tmux.assert_restored(&screen);
        let cached = rank_reuses_cache(images.path(), cache.path());
        assert!(
            cached >= done,
            "{done} were done at the signal, {cached} kept"
        );
        last_cache = Some(cache);
    }
    let cache = last_cache.unwrap();
    // In the explorer: leave at once with 128 + the signal; the cache stays whole.
    for (round, (sig, status)) in [("TERM", 143), ("HUP", 129)].into_iter().enumerate() {
        let tmux = Tmux::launch(
            &format!("sigx{round}"),
            &bin(),
            &explore_args(images.path(), cache.path(), &[]),
            &[],
        );
        tmux.wait_for("sort: knn score", 120);
        signal(tmux.app_pid().expect("snowscope runs"), sig);
        let (code, screen) = tmux.exit_code(20);
        assert_eq!(code, status, "SIG{sig} in the explorer: {screen}");
        tmux.assert_restored(&screen);
        assert_eq!(
            rank_reuses_cache(images.path(), cache.path()),
            INTERRUPTED as usize
        );
    }
}

#[test]
fn a_dropped_terminal_ends_the_explorer_and_keeps_the_cache_whole() {
    if !have_tmux() {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_many(images.path(), INTERRUPTED);
    // As an SSH drop: the terminal goes away (SIGHUP, then reads and writes fail).
    let tmux = Tmux::launch(
        "drop",
        &bin(),
        &explore_args(images.path(), cache.path(), &["--batch-size 1 --threads 1"]),
        &[],
    );
    // Images extracted before the drop: none may be lost.
    let done = wait_mid_extraction(&tmux, INTERRUPTED as usize);
    let pid = tmux.app_pid().expect("snowscope runs");
    tmux.cmd(&["kill-server"]);
    let gone = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie has no command line left; only a live process counts.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.contains("State:\tZ") {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(30),
            "snowscope still running 30 s after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("exited {:?} after the terminal closed", gone.elapsed());
    let cached = rank_reuses_cache(images.path(), cache.path());
    eprintln!("{cached} of {INTERRUPTED} reused from the cache ({done} done at the drop)");
    assert!(
        cached >= done,
        "{done} images were extracted before the terminal went away, {cached} were saved"
    );
}

#[test]
fn panics_on_the_ui_or_a_worker_thread_restore_the_terminal() {
    if !have_tmux() {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    write_images(images.path());
    for (site, want_code, want_text) in [
        ("ui", 101, "panicked"),
        ("worker", 1, "internal error while preparing the ranking"),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let tmux = Tmux::launch(
            &format!("panic-{site}"),
            &bin(),
            &explore_args(images.path(), cache.path(), &[]),
            &[("SNOWSCOPE_TEST_PANIC", site)],
        );
        let (code, screen) = tmux.exit_code(300);
        eprintln!("panic on {site}:\n{screen}");
        assert_eq!(code, want_code, "{screen}");
        assert!(screen.contains(want_text), "{screen}");
        assert!(
            screen.contains(&format!("SNOWSCOPE_TEST_PANIC={site}")),
            "the message is shown: {screen}"
        );
        tmux.assert_restored(&screen);
        // Whatever the panic interrupted, the cache is whole.
        rank_reuses_cache(images.path(), cache.path());
    }
}

#[test]
fn resizing_to_1x1_and_back_while_previews_load() {
    if !have_tmux() {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(images.path());
    let tmux = Tmux::launch(
        "resize",
        &bin(),
        &explore_args(images.path(), cache.path(), &[]),
        &[],
    );
    tmux.wait_for("sort: knn score", 300);
    // Every move asks for new previews; every resize makes the pending ones the wrong size.
    for round in 0..12 {
        let (w, h) = if round % 2 == 0 {
            ("1", "1")
        } else {
            ("120", "36")
        };
        tmux.cmd(&["resize-window", "-t", "e2e", "-x", w, "-y", h]);
        tmux.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(60));
        tmux.keys(&["k"]);
    }
    tmux.cmd(&["resize-window", "-t", "e2e", "-x", "1", "-y", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.cmd(&["resize-window", "-t", "e2e", "-x", "120", "-y", "36"]);
    let screen = tmux.wait_for("sort: knn score", 10);
    assert!(screen.contains("8/8 shown"), "{screen}");
    assert!(tmux.app_pid().is_some(), "still running");
    tmux.keys(&["q"]);
    let (code, screen) = tmux.exit_code(20);
    assert_eq!(code, 0, "{screen}");
    tmux.assert_restored(&screen);
}

#[test]
fn a_mark_made_in_the_explorer_is_in_the_next_rank_json() {
    let Some((bin, images, cache)) = eight_images() else {
        return;
    };
    let args = explore_args(images.path(), cache.path(), &[]);
    let tmux = Tmux::launch("marks", &bin, &args, &[]);
    tmux.wait_for("sort: knn score ↓", 300);
    // The second row, whatever it is: its file name is on the status line after the mark.
    tmux.keys(&["j", "Space"]);
    let screen = tmux.wait_for("1 marked", 10);
    let marked = screen
        .split("marked ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the marked file's name")
        .to_string();
    tmux.keys(&["q"]);
    let (code, _) = tmux.exit_code(20);
    assert_eq!(code, 0);

    let out = Command::new(&bin)
        .arg("rank")
        .arg(images.path())
        .args([
            "--format",
            "json",
            "--top",
            "0",
            "--no-explain",
            "--cache-dir",
        ])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let marked_now: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["marked"] == true)
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(marked_now, [marked.as_str()]);

    // `--marked` lists exactly that image, with its rank.
    let out = Command::new(&bin)
        .arg("rank")
        .arg(images.path())
        .args(["--format", "csv", "--marked", "--no-explain", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("2,"), "{csv}");
}

/// The explorer shows the ranking its cache remembers at once, then checks the folder:
/// unchanged, the table stays; changed, the new ranking replaces it, and the user is told.
#[test]
fn a_remembered_ranking_is_shown_then_checked_against_the_folder() {
    let Some((bin, images, cache)) = eight_images() else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let run = |name: &str, want: &str| -> String {
        let log = logs.path().join(format!("{name}.log"));
        let args = explore_args(
            images.path(),
            cache.path(),
            &["--log-file", &shell_quote(&log)],
        );
        let tmux = Tmux::launch(name, &bin, &args, &[]);
        let screen = tmux.wait_for(want, 300);
        // Wait for the check to finish before leaving.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut text = String::new();
        while Instant::now() < deadline {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("folder checked") || text.contains("runtime: ranking ready") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tmux.keys(&["q"]);
        let (code, after) = tmux.exit_code(20);
        assert_eq!(code, 0, "{after}");
        tmux.assert_restored(&after);
        text + &screen
    };
    // A first start has nothing to remember.
    let first = run("first", "8/8 shown");
    assert!(!first.contains("remembered ranking sent"), "{first}");
    let second = run("second", "8/8 shown");
    assert!(second.contains("remembered ranking sent"), "{second}");
    assert!(second.contains("folder checked: unchanged"), "{second}");
    // A ninth image: the table that was remembered is replaced.
    let ninth = images.path().join("flake09.png");
    std::fs::copy(images.path().join("flake08.png"), &ninth).unwrap();
    let log = run("third", "9/9 shown");
    assert!(log.contains("remembered ranking sent"), "{log}");
    assert!(log.contains("the folder changed since"), "{log}");
}
