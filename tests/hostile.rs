//! Hostile input, all in one folder that the test builds itself: broken, empty, huge-header,
//! mislabelled and odd-format images, files that are not files (FIFO, device, symlink
//! loop), a folder named like an image, file names with escape sequences, newlines and
//! bytes that are not UTF-8; then an unreadable file in a read-only folder (as an
//! unprivileged user), a file that vanishes between the scan and the decoder, and folders
//! with 0 and 1 images. Each time: the run goes on, every bad file is skipped with its
//! reason, the others are ranked, the exit code is the documented one, and no control
//! byte from a file name reaches the terminal.

use snowscope::preprocess::crc32;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn snowscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snowscope"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

/// A distinct picture per `seed`: a disc over a gradient.
fn scene(seed: u32, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let (cx, cy) = ((seed * 13 % w.max(1)) as f32, (h / 2) as f32);
        let d = (x as f32 - cx).hypot(y as f32 - cy);
        if d < 10.0 + seed as f32 {
            image::Rgb([(seed * 40 % 256) as u8, 220, 30])
        } else {
            image::Rgb([
                (x * 3 % 256) as u8,
                (y * 4 % 256) as u8,
                (seed * 25 % 256) as u8,
            ])
        }
    })
}

/// A valid PNG signature and IHDR claiming `side` x `side` RGB pixels, and no pixel data.
fn png_header_only(side: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png
}

/// A JPEG whose frame header (SOF0) claims `side` x `side` pixels (JPEG's largest is 65535).
fn jpeg_header_only(side: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .encode_image(&scene(1, 16, 16))
        .unwrap();
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    // FF C0, length (2), precision (1), height (2), width (2)
    bytes[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    bytes
}

fn exif_rotated_jpeg() -> Vec<u8> {
    snowscope::preprocess::exif_rotated_jpeg(&scene(7, 40, 20))
}

fn animated_gif() -> Vec<u8> {
    let frames = [image::Rgba([250, 0, 0, 255]), image::Rgba([0, 0, 250, 255])]
        .map(|c| image::Frame::new(image::RgbaImage::from_pixel(12, 12, c)));
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::gif::GifEncoder::new(&mut bytes);
    encoder.encode_frames(frames).unwrap();
    drop(encoder);
    bytes
}

/// What the hostile folder holds: name -> expected outcome (`None`: ranked; `Some(words)`:
/// skipped with a reason that contains `words`).
fn build_hostile_folder(dir: &Path) -> BTreeMap<Vec<u8>, Option<&'static str>> {
    let mut expect: BTreeMap<Vec<u8>, Option<&'static str>> = BTreeMap::new();
    let mut put = |name: &[u8], bytes: &[u8], outcome| {
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(name)), bytes).unwrap();
        expect.insert(name.to_vec(), outcome);
    };
    let png = |img: &image::RgbImage| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let good_png = png(&scene(1, 96, 64));
    let mut good_jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut good_jpg)
        .encode_image(&scene(2, 96, 64))
        .unwrap();

    // Well-formed images in every supported shape: ranked.
    put(b"good.png", &good_png, None);
    put(b"good.jpg", &good_jpg, None);
    put(b"one_pixel.png", &png(&scene(3, 1, 1)), None);
    put(b"exif_rotated.jpg", &exif_rotated_jpeg(), None);
    for (name, fixture_name) in [
        (&b"cmyk.jpg"[..], "cmyk.jpg"),
        (b"progressive.jpg", "progressive.jpg"),
        (b"palette.png", "palette.png"),
        (b"gray_alpha.png", "gray_alpha.png"),
        (b"gray16.png", "gray16.png"),
        (b"lossless.webp", "lossless.webp"),
        (b"image.bmp", "image.bmp"),
        (b"image.tiff", "image.tiff"),
    ] {
        put(name, &std::fs::read(fixture(fixture_name)).unwrap(), None);
    }
    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(20, 20, |x, y| {
        image::Rgb([x as u16 * 3000, y as u16 * 3000, 40000])
    });
    let mut deep_png = std::io::Cursor::new(Vec::new());
    deep.write_to(&mut deep_png, image::ImageFormat::Png)
        .unwrap();
    put(b"rgb16.png", deep_png.get_ref(), None);
    put(b"animated.gif", &animated_gif(), None);
    // Names that must never reach the terminal raw, on good images.
    put(b"new\nline.png", &png(&scene(4, 30, 30)), None);
    put(b"\x1b]0;pwned\x07title.png", &png(&scene(5, 30, 30)), None);
    put(b"latin1-\xe9t\xe9.png", &png(&scene(6, 30, 30)), None);

    // Bad content: skipped with a reason.
    put(b"empty.png", b"", Some("empty file"));
    put(
        b"truncated.png",
        &good_png[..good_png.len() / 2],
        Some("cannot decode: truncated"),
    );
    // JPEG decoders are lenient: data that ends mid-scan decodes with the rest grey.
    put(b"truncated_scan.jpg", &good_jpg[..good_jpg.len() / 2], None);
    put(
        b"truncated_header.jpg",
        &good_jpg[..60],
        Some("cannot decode"),
    );
    put(
        b"notes.jpg",
        b"shopping list: milk, snow\n",
        Some("not a recognised image format"),
    );
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    put(
        b"random.webp",
        &random,
        Some("not a recognised image format"),
    );
    put(b"bomb.png", &png_header_only(100_000), Some("limit"));
    put(b"bomb.jpg", &jpeg_header_only(65_500), Some("limit"));
    put(
        b"evil\x1b[2J\x1b]0;x\x07\nname.png",
        b"\x1b[31mnot an image",
        Some("not a recognised image format"),
    );

    // Things that are not image files.
    let ok = Command::new("mkfifo")
        .arg(dir.join("fifo.jpg"))
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        expect.insert(b"fifo.jpg".to_vec(), Some("not a regular file"));
    }
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.png")).unwrap();
    expect.insert(b"zero.png".to_vec(), Some("not a regular file"));
    std::os::unix::fs::symlink(dir.join("loop_b.png"), dir.join("loop_a.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("loop_a.png"), dir.join("loop_b.png")).unwrap();
    expect.insert(b"loop_a.png".to_vec(), Some("cannot read file"));
    expect.insert(b"loop_b.png".to_vec(), Some("cannot read file"));
    std::os::unix::fs::symlink(dir.join("gone.png"), dir.join("dangling.png")).unwrap();
    expect.insert(b"dangling.png".to_vec(), Some("cannot read file"));
    std::os::unix::fs::symlink(dir, dir.join("folder_loop.png")).unwrap();
    expect.insert(
        b"folder_loop.png".to_vec(),
        Some("symlink to a folder, not followed"),
    );
    // A folder named like an image is a folder: scanned, not decoded.
    std::fs::create_dir(dir.join("folder.png")).unwrap();
    std::fs::write(dir.join("folder.png/inner.png"), png(&scene(8, 30, 30))).unwrap();
    expect.insert(b"folder.png/inner.png".to_vec(), None);
    expect
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
    let numbers: Vec<usize> = plan
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(numbers[1] >= want_ranked, "{plan}");
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
    assert_eq!(set.data.len(), 3 * set.dim);
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
