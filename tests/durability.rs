//! The cache survives what users do to running programs: kill -9 mid-extraction, two
//! processes on one folder at once, a damaged cache file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_images(dir: &Path, n: usize) {
    for i in 0..n {
        let mut img = image::RgbImage::from_fn(80, 60, |x, y| {
            image::Rgb([
                ((x * 3 + i as u32 * 7) % 256) as u8,
                ((y * 5 + i as u32 * 13) % 256) as u8,
                (i * 4 % 256) as u8,
            ])
        });
        // A corner pixel that spells the index keeps every file distinct.
        img.put_pixel(0, 0, image::Rgb([(i / 256) as u8, (i % 256) as u8, 0]));
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
    }
}

fn rank(dir: &Path, cache: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snowscope"));
    cmd.arg("rank")
        .arg(dir)
        .arg("--cache-dir")
        .arg(cache)
        .args(extra);
    cmd
}

fn cached_count(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.contains("from the cache"))
        .expect("plan line");
    line.split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn cache_files(cache: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache).map_or(vec![], |d| d.flatten().map(|e| e.path()).collect())
}

#[test]
fn kill_9_during_extraction_keeps_finished_work() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // One image per batch and one thread, and enough images that extraction outlasts the
    // first periodic save (3 s) by a wide margin: the kill lands in the middle.
    let total = 1200;
    write_images(dir.path(), total);
    // Kill without warning once the first periodic save is on disk.
    let mut child = spawn_mid_extraction(dir.path(), cache.path());
    let _ = child.kill();
    let _ = child.wait();
    let out = rank(dir.path(), cache.path(), &["--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("corrupt"), "{stderr}");
    let reused = cached_count(&stderr);
    assert!(
        reused > 0 && reused < total,
        "killed mid-run, the finished part was reused: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], total);
    // No temporary files are left behind by the killed writer's successors.
    let again = rank(dir.path(), cache.path(), &[]).output().unwrap();
    assert_eq!(cached_count(&String::from_utf8_lossy(&again.stderr)), total);
}

/// A slow `rank` (one image per batch, one thread) of `dir`, returned once it has written
/// its first cache file: extraction is under way and part of it is saved.
fn spawn_mid_extraction(dir: &Path, cache: &Path) -> std::process::Child {
    let mut child = rank(dir, cache, &["--batch-size", "1", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while cache_files(cache)
        .iter()
        .all(|p| p.extension().is_none_or(|e| e != "safetensors"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cache written within a minute"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "extraction finished too soon: the test needs more images"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn signals_during_extraction_exit_with_the_shells_status_and_keep_finished_work() {
    let dir = tempfile::tempdir().unwrap();
    let total = 1200;
    write_images(dir.path(), total);
    for (signal, status) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        let cache = tempfile::tempdir().unwrap();
        let mut child = spawn_mid_extraction(dir.path(), cache.path());
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let code = child.wait().unwrap().code();
        assert_eq!(code, Some(status), "SIG{signal}");
        let out = rank(dir.path(), cache.path(), &[]).output().unwrap();
        let reused = cached_count(&String::from_utf8_lossy(&out.stderr));
        assert!(reused > 0, "SIG{signal}: the finished features were kept");
    }
}

#[test]
fn two_processes_at_once_and_a_damaged_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 40);
    let spawn = || {
        rank(dir.path(), cache.path(), &["--format", "csv", "--top", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout, "both processes rank the same");
    let third = rank(dir.path(), cache.path(), &["--format", "csv", "--top", "0"])
        .output()
        .unwrap();
    assert_eq!(cached_count(&String::from_utf8_lossy(&third.stderr)), 40);
    assert_eq!(third.stdout, a.stdout);

    // Flip bytes in the middle of the cache file: detected, reported, rebuilt.
    let file = cache_files(cache.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() - 1000;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let out = rank(dir.path(), cache.path(), &["--format", "csv", "--top", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("corrupt") && stderr.contains("rebuilt"),
        "{stderr}"
    );
    assert_eq!(cached_count(&stderr), 0);
    assert_eq!(out.stdout, a.stdout, "rebuilt features rank the same");
}

#[test]
fn damaged_features_are_found_when_first_read_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 30);
    let csv = |cache: &Path, extra: &[&str]| {
        let mut args = vec!["--format", "csv", "--top", "0", "--no-explain"];
        args.extend_from_slice(extra);
        let out = rank(dir.path(), cache, &args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (first, _) = csv(cache.path(), &[]);
    // Flip a byte of the features (the first matrix, right after the header).
    let file = cache_files(cache.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header + 100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    // A warm start with cached neighbour lists does not read the features: the ranking
    // comes from lists made from the intact ones.
    let (warm, stderr) = csv(cache.path(), &[]);
    assert_eq!(warm, first);
    assert_eq!(cached_count(&stderr), 30);
    assert!(!stderr.contains("corrupt"), "{stderr}");

    // Other settings need the features: the damage is found, reported, and the cache
    // rebuilt in the same run, which ranks as a fresh cache does.
    let (rebuilt, stderr) = csv(cache.path(), &["--k", "2"]);
    assert!(
        stderr.contains("corrupt") && stderr.contains("checksum"),
        "{stderr}"
    );
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(rebuilt, csv(fresh.path(), &["--k", "2"]).0);
    let (_, stderr) = csv(cache.path(), &["--k", "2"]);
    assert_eq!(
        cached_count(&stderr),
        30,
        "the rebuilt cache is used: {stderr}"
    );
    assert!(!stderr.contains("corrupt"), "{stderr}");
}

/// A tiny tmpfs, unmounted on drop; `None` where mounting is not allowed (not root).
struct TinyDisk(tempfile::TempDir);

impl TinyDisk {
    fn mount(bytes: usize) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_loses_no_result_and_leaves_no_partial_file() {
    let Some(disk) = TinyDisk::mount(64 * 1024) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path(), 60); // 60 x 1280 features: 300 KB, more than the disk holds
    let out = rank(
        dir.path(),
        disk.0.path(),
        &["--format", "csv", "--top", "0"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write cache") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        61,
        "every image ranked"
    );
    let leftovers: Vec<_> = cache_files(disk.0.path())
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "tmp" || e == "safetensors")
        })
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
}
