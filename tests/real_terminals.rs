//! The explorer's previews in real terminals with their default settings, judged from the
//! pixels. Each terminal (xterm `-ti vt340`, mlterm, kitty `--config NONE`) runs
//! `snowscope explore` on a folder whose most unique image is a fine checkerboard, on a
//! virtual X display (Xvfb); a screenshot of the display (ImageMagick's `import`) must
//! show the checkerboard's squares, which are narrower than a character cell: halfblocks
//! and placeholder glyphs cannot draw that, only a graphics protocol can. The terminal's
//! own error output must hold no protocol error (kitty logs `[PARSE ERROR]` there).
//!
//! foot speaks only Wayland: it runs in cage, a kiosk compositor, on wlroots' headless
//! backend with its software renderer, and `grim` takes the screenshot. Compositors refuse
//! to run as root, so as root these run as `nobody` (`setpriv`).
//!
//! Screenshots are kept in `target/real-terminals/` to look at.
//!
//! Needs `Xvfb`, `import`, and the terminals (`apt-get install xvfb xterm mlterm kitty
//! imagemagick foot cage grim xwayland`; `.ci/run` installs them). Outside CI a missing
//! program skips with a message; with `CI=true` it fails the test.

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The checkerboard's colours: far apart in every channel that matters.
const RED: Rgb<u8> = Rgb([235, 30, 30]);
const BLUE: Rgb<u8> = Rgb([30, 40, 235]);
/// Side of the checkerboard image and of its squares, in pixels. A preview slot of some
/// 200-400 pixels scales it by 1.2-2.5, so squares land 2-5 pixels wide on screen, under
/// any terminal's cell width (6 pixels and more).
const CHECKER_SIDE: u32 = 160;
const SQUARE: u32 = 2;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether `program` can run; when not: a failure in CI, a printed skip elsewhere.
fn have(program: &str, why: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !in_ci(),
            "{program} is missing under CI ({why}); .ci/run installs it"
        );
        eprintln!(
            "SKIPPED ({why}): {program} is not installed (apt-get install xvfb xterm mlterm kitty imagemagick)"
        );
    }
    found
}

/// A private X display, stopped when dropped.
struct Display {
    server: Child,
    name: String,
}

impl Display {
    fn start() -> Display {
        // A display number no other test run uses.
        let n = (100..400)
            .map(|i| i + std::process::id() % 300)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free display number");
        let name = format!(":{n}");
        let server = Command::new("Xvfb")
            .args([&name, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        wait_until(10, "Xvfb to listen", || socket.exists().then_some(()));
        Display { server, name }
    }

    fn screenshot(&self, path: &Path) -> RgbImage {
        let out = Command::new("import")
            .args(["-display", &self.name, "-window", "root"])
            .arg(path)
            .output()
            .expect("run import");
        assert!(out.status.success(), "import: {out:?}");
        image::open(path).expect("read the screenshot").to_rgb8()
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Four images: three soft, alike gradients and the checkerboard, which ranks first and so
/// is selected when the explorer opens.
fn write_images(dir: &Path) {
    let checker = RgbImage::from_fn(CHECKER_SIDE, CHECKER_SIDE, |x, y| {
        if (x / SQUARE + y / SQUARE).is_multiple_of(2) {
            RED
        } else {
            BLUE
        }
    });
    checker.save(dir.join("checker.png")).unwrap();
    for i in 0..3u32 {
        let soft = RgbImage::from_fn(CHECKER_SIDE, CHECKER_SIDE, |x, y| {
            Rgb([(60 + x / 4 + i * 3) as u8, (90 + y / 4) as u8, 120])
        });
        soft.save(dir.join(format!("soft{i}.png"))).unwrap();
    }
}

/// One terminal's command line, with the explorer inside.
struct Terminal {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    /// The protocol the explorer must choose there.
    expected: &'static str,
}

/// `explore` inside a private tmux server (its own socket, no configuration).
/// The shell command that starts the explorer on `images`, logging to `log`.
fn explore_command(images: &Path, cache: &Path, log: &Path) -> String {
    format!(
        "RUST_LOG=snowscope=debug exec '{}' explore '{}' --cache-dir '{}' --log-file '{}'",
        env!("CARGO_BIN_EXE_snowscope"),
        images.display(),
        cache.display(),
        log.display()
    )
}

fn in_tmux(explore: &str) -> String {
    format!(
        "exec tmux -L snowscope-rt-{} -f /dev/null new-session \"{}\"",
        std::process::id(),
        explore.replace('"', "\\\"")
    )
}

/// `program ARGS... sh -c COMMAND`, as owned strings.
fn running(args: &[&str], command: String) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string())
        .chain(["sh".into(), "-c".into(), command])
        .collect()
}

fn terminals(explore: &str) -> Vec<Terminal> {
    let xterm = ["-ti", "vt340", "-geometry", "150x46+0+0", "-e"];
    let kitty = [
        "--config",
        "NONE",
        "-o",
        "remember_window_size=no",
        "-o",
        "initial_window_width=1100",
        "-o",
        "initial_window_height=720",
    ];
    // No GPU on a virtual display: Mesa's software renderer.
    let software_gl = || vec![("LIBGL_ALWAYS_SOFTWARE", "1")];
    vec![
        Terminal {
            name: "xterm",
            program: "xterm",
            args: running(&xterm, explore.into()),
            env: vec![],
            expected: "sixel",
        },
        Terminal {
            name: "mlterm",
            program: "mlterm",
            args: running(&["--geometry", "140x42+0+0", "-e"], explore.into()),
            env: vec![],
            expected: "sixel",
        },
        Terminal {
            name: "kitty",
            program: "kitty",
            args: running(&kitty, explore.into()),
            env: software_gl(),
            expected: "kitty",
        },
        // Inside tmux: sixel is fragile, and kitty 0.26 has no placeholders, which tmux
        // needs; both get halfblocks, with no error in the outer terminal.
        Terminal {
            name: "xterm+tmux",
            program: "xterm",
            args: running(&xterm, in_tmux(explore)),
            env: vec![],
            expected: "halfblocks",
        },
        Terminal {
            name: "kitty+tmux",
            program: "kitty",
            args: running(&kitty, in_tmux(explore)),
            env: software_gl(),
            expected: "halfblocks",
        },
    ]
}

/// The longest stretch of one screen row that alternates between the checkerboard's two
/// colours in runs no wider than `max_run` pixels (a pixel or two of blend between squares
/// allowed): (alternations, x where it starts, y).
fn finest_alternation(shot: &RgbImage, max_run: u32) -> (u32, u32, u32) {
    let class = |p: &Rgb<u8>| {
        let [r, _, b] = p.0.map(i32::from);
        match r - b {
            d if d > 80 => Some(RED),
            d if d < -80 => Some(BLUE),
            _ => None,
        }
    };
    let mut best = (0, 0, 0);
    for y in 0..shot.height() {
        let (mut count, mut start, mut run, mut blend) = (0u32, 0u32, 0u32, 0u32);
        let mut last: Option<Rgb<u8>> = None;
        for x in 0..=shot.width() {
            let c = if x < shot.width() {
                class(shot.get_pixel(x, y))
            } else {
                None
            };
            match (c, last) {
                (None, _) if blend < 2 && x < shot.width() => blend += 1,
                (Some(c), Some(l)) if c == l => run += 1 + blend,
                (Some(_), Some(_)) if run <= max_run => {
                    // The other colour after a short run: one more alternation.
                    if count == 0 {
                        start = x - run - blend;
                    }
                    count += 1;
                    run = 1 + blend;
                }
                _ => {
                    if count > best.0 {
                        best = (count, start, y);
                    }
                    (count, run) = (0, 1);
                    if c.is_none() {
                        (last, blend) = (None, 0);
                    }
                }
            }
            if c.is_some() {
                (last, blend) = (c, 0);
            }
        }
    }
    best
}

/// Lines of a terminal's error output that speak of a protocol error.
fn protocol_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            [
                "parse error",
                "malformed",
                "invalid",
                "unknown escape",
                "unrecognized",
                "unimplemented",
                "unhandled",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect()
}

#[test]
fn previews_show_pixels_in_xterm_mlterm_and_kitty_and_halfblocks_in_tmux() {
    if !(have("Xvfb", "the virtual display") && have("import", "the screenshots")) {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    write_images(images.path());
    let cache = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../real-terminals");
    std::fs::create_dir_all(&shots).unwrap();
    let display = Display::start();
    let mut failures = Vec::new();
    for (i, _) in terminals("").iter().enumerate() {
        let log = cache.path().join(format!("explore{i}.log"));
        let explore = explore_command(images.path(), cache.path(), &log);
        let term = terminals(&explore).swap_remove(i);
        let tmux = term.name.ends_with("+tmux");
        if !have(term.program, term.name) || (tmux && !have("tmux", term.name)) {
            continue;
        }
        let stderr_path = shots.join(format!("{}.stderr", term.name));
        let mut child = Command::new(term.program)
            .args(&term.args)
            .envs(term.env.iter().copied())
            .env("DISPLAY", &display.name)
            .env_remove("TMUX")
            .env_remove("TERM_PROGRAM")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", term.name));
        // Ready when both pictures are encoded; then give the terminal a moment to draw.
        let ready = (|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.matches("preview ready").count() >= 2 {
                    return Some(text);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            None
        })();
        std::thread::sleep(Duration::from_millis(1500));
        let shot_path = shots.join(format!("{}.png", term.name));
        let shot = display.screenshot(&shot_path);
        let _ = child.kill();
        let _ = child.wait();
        if tmux {
            let _ = Command::new("tmux")
                .args([
                    "-L",
                    &format!("snowscope-rt-{}", std::process::id()),
                    "kill-server",
                ])
                .output();
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let choice = log_text
            .lines()
            .find(|l| l.contains("preview protocol"))
            .and_then(|l| l.split("choice=").nth(1))
            .unwrap_or("(none logged)")
            .to_string();
        let (alternations, x, y) = finest_alternation(&shot, 5);
        eprintln!(
            "{}: chose {choice}; {alternations} alternations of 2-5 px at ({x}, {y}); screenshot {}",
            term.name,
            shot_path.display()
        );
        if ready.is_none() {
            failures.push(format!(
                "{}: the previews never became ready; log:\n{log_text}",
                term.name
            ));
            continue;
        }
        if !choice.starts_with(term.expected) {
            failures.push(format!(
                "{}: chose {choice}, expected {}",
                term.name, term.expected
            ));
        }
        // A 160-px board of 2-px squares shows some 80 squares across; 30 alternations
        // in one row leave room for scaling and the pane's edges. Halfblocks cannot.
        if term.expected != "halfblocks" && alternations < 30 {
            failures.push(format!(
                "{}: the checkerboard is not drawn at pixel resolution ({alternations} fine alternations); see {}",
                term.name,
                shot_path.display()
            ));
        }
        let errors = protocol_errors(&stderr);
        if !errors.is_empty() {
            failures.push(format!("{}: protocol errors: {errors:?}", term.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether this process runs as root (compositors then run as `nobody`).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, as `nobody` when this process is root.
fn unprivileged(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    }
}

/// Opens `dir` to every user (tempfile makes it private), for a compositor run as nobody.
fn share(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o666));
    }
}

#[test]
fn previews_show_pixels_in_foot_on_wayland() {
    if !["cage", "foot", "grim", "Xwayland"]
        .iter()
        .all(|p| have(p, "foot on a headless Wayland compositor"))
    {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    write_images(images.path());
    share(images.path());
    let cache = tempfile::tempdir().unwrap();
    share(cache.path());
    // The compositor's runtime folder: private to the user that runs it.
    let runtime = tempfile::tempdir().unwrap();
    if is_root() {
        std::os::unix::fs::chown(runtime.path(), Some(65534), Some(65534)).unwrap();
    }
    let log = cache.path().join("explore.log");
    let explore = explore_command(images.path(), cache.path(), &log);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../real-terminals");
    std::fs::create_dir_all(&shots).unwrap();
    let stderr_path = shots.join("foot.stderr");
    let wayland = |cmd: &mut Command| {
        cmd.env("HOME", runtime.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("WLR_BACKENDS", "headless")
            .env("WLR_RENDERER", "pixman")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env_remove("DISPLAY")
            .env_remove("TMUX")
            .env_remove("TERM_PROGRAM");
    };
    let mut cage = unprivileged("cage");
    cage.args(["--", "foot", "-W", "170x42", "-e", "sh", "-c", &explore]);
    wayland(&mut cage);
    let mut child = cage
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start cage");
    let ready = (|| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("preview ready").count() >= 2 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })();
    std::thread::sleep(Duration::from_millis(1500));
    // The socket cage made: wayland-N beside its lock file.
    let socket = std::fs::read_dir(runtime.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("wayland-") && !n.ends_with(".lock"));
    let shot_in_runtime = runtime.path().join("foot.png");
    if let Some(socket) = &socket {
        let mut grim = unprivileged("grim");
        wayland(&mut grim);
        let out = grim
            .env("WAYLAND_DISPLAY", socket)
            .arg(&shot_in_runtime)
            .output()
            .expect("run grim");
        assert!(out.status.success(), "grim: {out:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        socket.is_some() && ready,
        "foot: no previews; cage said:\n{stderr}\nlog:\n{log_text}"
    );
    let shot_path = shots.join("foot.png");
    std::fs::copy(&shot_in_runtime, &shot_path).unwrap();
    let shot = image::open(&shot_path).unwrap().to_rgb8();
    let choice = log_text
        .lines()
        .find(|l| l.contains("preview protocol"))
        .and_then(|l| l.split("choice=").nth(1))
        .unwrap_or("(none logged)");
    let (alternations, x, y) = finest_alternation(&shot, 5);
    eprintln!(
        "foot: chose {choice}; {alternations} alternations of 2-5 px at ({x}, {y}); screenshot {}",
        shot_path.display()
    );
    assert!(choice.starts_with("sixel"), "foot: chose {choice}");
    assert!(
        alternations >= 30,
        "foot: the checkerboard is not drawn at pixel resolution"
    );
    assert_eq!(protocol_errors(&stderr), Vec::<&str>::new());
}

#[test]
fn the_pixel_check_tells_pixels_from_cells() {
    // A checkerboard of 3-px squares passes; the same colours in 8-px cells (what
    // halfblocks could draw at best) do not.
    let fine = RgbImage::from_fn(
        300,
        40,
        |x, _| if (x / 3).is_multiple_of(2) { RED } else { BLUE },
    );
    assert!(finest_alternation(&fine, 5).0 >= 90);
    let cells = RgbImage::from_fn(
        300,
        40,
        |x, _| if (x / 8).is_multiple_of(2) { RED } else { BLUE },
    );
    assert_eq!(finest_alternation(&cells, 5).0, 0);
    assert_eq!(
        protocol_errors("[PARSE ERROR] Malformed GraphicsCommand control block\nok"),
        vec!["[PARSE ERROR] Malformed GraphicsCommand control block"]
    );
}
