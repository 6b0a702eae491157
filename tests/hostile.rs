//! Hostile input, all in one folder that the test builds itself: broken, empty, huge-header,
//! mislabelled and odd-format images, files that are not files (FIFO, device, symlink
//! loop), a folder named like an image, file names with escape sequences, newlines and
//! bytes that are not UTF-8; then an unreadable file in a read-only folder (as an
//! unprivileged user), a file that vanishes between the scan and the decoder, and folders
//! with 0 and 1 images. Each time: the run goes on, every bad file is skipped with its
//! reason, the others are ranked, the exit code is the documented one, and no control
//! byte from a file name reaches the terminal.

#[path = "support/hostile_files.rs"]
mod hostile_files;

use hostile_files::{
    build_hostile_folder, fixture, jpeg_header_only, output_and_peak_rss, png_header_only, scene,
    tiny_jpeg_bomb,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn snowscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snowscope"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sanitized(name: &[u8]) -> String {
    snowscope::sanitize::sanitize(&String::from_utf8_lossy(name))
}

#[test]
fn a_folder_of_hostile_files_is_ranked_around_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let expect = build_hostile_folder(dir.path());
    let listing = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let started = Instant::now();
    let out = snowscope()
        .arg("rank")
        .arg(dir.path())
        .args(["--format", "json", "--top", "0", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "no hang on a FIFO or /dev/zero"
    );
    assert_eq!(out.status.code(), Some(3), "ranked with skips: {stderr}");
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.iter().any(|&b| b == 0x1b || b == 0x07),
            "a control byte from a file name reached the terminal: {}",
            text(stream)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranked: BTreeMap<String, &serde_json::Value> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["path"].as_str().unwrap().to_string(), i))
        .collect();
    let skipped: BTreeMap<String, String> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The report for the notes: every input and what it got.
    for (name, want) in &expect {
        let lossy = String::from_utf8_lossy(name).into_owned();
        let got = match (ranked.get(&lossy), skipped.get(&lossy)) {
            (Some(_), _) => "ranked".to_string(),
            (None, Some(reason)) => format!("skipped: {}", sanitized(reason.as_bytes())),
            (None, None) => "MISSING".into(),
        };
        eprintln!("| `{}` | {want:?} | {got} |", sanitized(name));
    }
    for (name, want) in &expect {
        let lossy = String::from_utf8_lossy(name).into_owned();
        match want {
            None => assert!(
                ranked.contains_key(&lossy),
                "{} should be ranked; skipped: {:?}",
                sanitized(name),
                skipped.get(&lossy)
            ),
            Some(words) => {
                let reason = skipped
                    .get(&lossy)
                    .unwrap_or_else(|| panic!("{} should be skipped", sanitized(name)));
                assert!(
                    reason.contains(words),
                    "{}: reason {reason:?} lacks {words:?}",
                    sanitized(name)
                );
                // The human-readable list on stderr: one sanitised line per skip.
                let line = format!("  {}: ", sanitized(name));
                assert!(stderr.contains(&line), "{line:?} not in {stderr}");
            }
        }
    }
    let want_ranked = expect.values().filter(|w| w.is_none()).count();
    assert_eq!(ranked.len(), want_ranked, "{stdout}");
    assert_eq!(skipped.len(), expect.len() - want_ranked, "{stderr}");
    // The table format prints one line per image whatever the names hold.
    let table = snowscope()
        .arg("rank")
        .arg(dir.path())
        .args(["--top", "0", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert_eq!(table.status.code(), Some(3));
    // Second run: every decodable picture from the cache (the bad ones are tried again).
    let plan = text(&table.stderr);
    let plan = plan
        .lines()
        .find(|l| l.contains("from the cache"))
        .expect("plan line");
    // "N images (D distinct), C from the cache; model: ..."
    let cached: usize = plan
        .split(", ")
        .nth(1)
        .and_then(|part| part.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count from the cache");
    assert!(cached >= want_ranked, "{plan}");
    assert_eq!(text(&table.stdout).lines().count(), 1 + want_ranked);
    // Nothing was written into the folder (the cache lives elsewhere).
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn huge_headers_are_refused_quickly_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let pp = snowscope::preprocess::Preprocess {
        size: 224,
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    for (name, bytes) in [
        ("bomb.png", png_header_only(100_000)),
        ("bomb.jpg", jpeg_header_only(65_535)),
        ("wide.png", png_header_only(20_001)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let started = Instant::now();
        let err = snowscope::preprocess::prepare(&path, &pp).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{name}: refused in {:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("limit"), "{name}: {err}");
    }
}

#[test]
fn tiny_jpeg_bombs_are_refused_as_truncated_in_bounded_memory() {
    // The report's folder: 3 good images and ten 2 KB files cut from 16000 x 16000 JPEGs.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        scene(i, 96, 64)
            .save(dir.path().join(format!("good{i}.png")))
            .unwrap();
    }
    for i in 0..10 {
        std::fs::write(
            dir.path().join(format!("bomb{i}.jpg")),
            tiny_jpeg_bomb(i + 1),
        )
        .unwrap();
    }
    let mut cmd = snowscope();
    cmd.arg("rank")
        .arg(dir.path())
        .args(["--format", "json", "--top", "0", "--no-cache"]);
    let started = Instant::now();
    let (out, peak_mb) = output_and_peak_rss(cmd);
    let elapsed = started.elapsed();
    eprintln!("13 files: {elapsed:?}, peak RSS {peak_mb:.0} MB");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["images"].as_array().unwrap().len(), 3);
    let skipped = json["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 10);
    for s in skipped {
        let reason = s["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("truncated: 0.0") && reason.ends_with("% of the image data present"),
            "{reason}"
        );
    }
    // A lenient decode of one such file alone allocates 768 MB.
    assert!(peak_mb < 400.0, "peak RSS {peak_mb:.0} MB");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

#[test]
fn truncated_files_of_every_format_are_not_ranked() {
    let dir = tempfile::tempdir().unwrap();
    let pp = snowscope::preprocess::Preprocess {
        size: 224,
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    let picture = scene(3, 300, 260);
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::WebP,
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(picture.clone())
            .write_to(&mut bytes, format)
            .unwrap();
        let bytes = bytes.into_inner();
        let path = dir
            .path()
            .join(format!("cut.{}", format.extensions_str()[0]));
        std::fs::write(&path, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let result = snowscope::preprocess::prepare(&path, &pp);
        let err = result.expect_err(&format!("{format:?} cut at 60 % was accepted"));
        eprintln!("{format:?} cut at 60 %: {err}");
    }
    // Progressive JPEG, cut: the blocks cannot be counted, the missing end still shows.
    let progressive = std::fs::read(fixture("progressive.jpg")).unwrap();
    let path = dir.path().join("cut_progressive.jpg");
    std::fs::write(&path, &progressive[..progressive.len() * 6 / 10]).unwrap();
    let err = snowscope::preprocess::prepare(&path, &pp).unwrap_err();
    assert!(err.to_string().starts_with("truncated"), "{err}");
    // Only the end-of-image marker missing: every block is there, so it is whole.
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpg)
        .encode_image(&picture)
        .unwrap();
    assert_eq!(jpg[jpg.len() - 2..], [0xFF, 0xD9]);
    let path = dir.path().join("no_eoi.jpg");
    std::fs::write(&path, &jpg[..jpg.len() - 2]).unwrap();
    snowscope::preprocess::prepare(&path, &pp).expect("all blocks present");
}

#[test]
fn a_file_deleted_between_scan_and_decode_is_skipped() {
    use snowscope::pipeline::{CacheMode, Event, PipelineConfig, compute_features};
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        scene(i, 64, 48)
            .save(dir.path().join(format!("img{i}.png")))
            .unwrap();
    }
    let cfg = PipelineConfig {
        model: Default::default(),
        batch_size: 2,
        threads: 1,
        cache: CacheMode::Off,
        cache_precision: Default::default(),
    };
    let victim = dir.path().join("img2.png");
    let mut events = Vec::new();
    // `Planned` comes after the scan and the content hashes, before any decoding.
    let set = compute_features(
        dir.path(),
        &cfg,
        &std::sync::atomic::AtomicBool::new(false),
        &mut |e| {
            if matches!(e, Event::Planned { .. }) {
                std::fs::remove_file(&victim).unwrap();
            }
            events.push(format!("{e:?}"));
        },
    )
    .unwrap();
    let names: Vec<&str> = set.items.iter().map(|i| i.rel.as_str()).collect();
    assert_eq!(names, ["img0.png", "img1.png", "img3.png"]);
    let features = set.features().unwrap();
    assert_eq!(
        features.iter(3).map(|r| r.len()).sum::<usize>(),
        3 * set.dim
    );
    assert_eq!(set.skipped.len(), 1, "{events:?}");
    assert_eq!(set.skipped[0].path, "img2.png");
    assert!(
        set.skipped[0].reason.contains("cannot read file"),
        "{:?}",
        set.skipped[0]
    );
}

#[test]
fn folders_with_no_image_and_with_one() {
    let cache = tempfile::tempdir().unwrap();
    let run = |dir: &Path| -> Output {
        snowscope()
            .arg("rank")
            .arg(dir)
            .args(["--format", "json", "--cache-dir"])
            .arg(cache.path())
            .output()
            .unwrap()
    };
    // Only non-images and bad images: nothing to rank is an error (exit 1).
    let none = tempfile::tempdir().unwrap();
    std::fs::write(none.path().join("readme.txt"), "no pictures here").unwrap();
    std::fs::write(none.path().join("broken.png"), b"\x89PNG").unwrap();
    let out = run(none.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nothing to rank"));
    assert!(out.stdout.is_empty());
    // Exactly one image: ranked alone, without a neighbour, exit 0.
    let one = tempfile::tempdir().unwrap();
    scene(1, 50, 50).save(one.path().join("only.png")).unwrap();
    let out = run(one.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert!(images[0]["closest_match"].is_null(), "{}", images[0]);
}

/// Runs `cmd` as user and group 65534 (nobody) when we are root, so that file
/// permissions apply; `None` when that is impossible here.
fn as_unprivileged(cmd: Command) -> Option<Command> {
    let uid = text(&Command::new("id").arg("-u").output().ok()?.stdout);
    if uid.trim() != "0" {
        return Some(cmd); // permissions already apply
    }
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    Some(wrapped)
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn unreadable_file_in_a_read_only_folder_with_the_default_cache() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    for i in 0..3 {
        scene(i, 64, 48)
            .save(dir.path().join(format!("img{i}.png")))
            .unwrap();
    }
    let secret = dir.path().join("secret.png");
    scene(9, 64, 48).save(&secret).unwrap();
    chmod(&secret, 0o000);
    // The folder can be listed and read, not written; the cache home is writable.
    chmod(dir.path(), 0o555);
    chmod(home.path(), 0o777);
    let xdg = home.path().join("xdg-cache");
    let mut cmd = snowscope();
    cmd.arg("rank")
        .arg(dir.path())
        .args(["--format", "csv"])
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", &xdg);
    let Some(mut cmd) = as_unprivileged(cmd) else {
        chmod(dir.path(), 0o755);
        eprintln!(
            "SKIPPED: running as root without a working `setpriv`, so permissions cannot apply"
        );
        return;
    };
    let out = cmd.output().unwrap();
    chmod(dir.path(), 0o755);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("secret.png: cannot read file: Permission denied"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).lines().count(), 4, "header + 3 images");
    // The cache went to $XDG_CACHE_HOME/snowscope, never into the folder.
    let cached: Vec<_> = std::fs::read_dir(xdg.join("snowscope"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .collect();
    assert_eq!(cached.len(), 1, "one feature cache in the XDG cache folder");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}
