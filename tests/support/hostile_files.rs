//! The hostile folder and its builders, shared by `tests/hostile.rs` and the soak
//! (`examples/soak.rs`): every kind of bad input the project knows, with what each must get.

#![allow(dead_code)] // each includer uses its own part

use snowscope::preprocess::crc32;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

/// A distinct picture per `seed`: a disc over a gradient.
pub fn scene(seed: u32, w: u32, h: u32) -> image::RgbImage {
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
pub fn png_header_only(side: u32) -> Vec<u8> {
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
pub fn jpeg_header_only(side: u16) -> Vec<u8> {
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

/// The first 2 KB of what claims to be a 16000 x 16000 baseline JPEG (a real 256 x 256
/// noisy JPEG whose frame header is made to claim the larger size): a tiny file that a
/// lenient decoder would expand into 768 MB of mostly invented grey. `seed` makes each
/// byte-different.
pub fn tiny_jpeg_bomb(seed: u32) -> Vec<u8> {
    let mut state = 0x2545_F491u32 ^ seed.wrapping_mul(0x9E37_79B9);
    let noisy = image::RgbImage::from_fn(256, 256, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&noisy)
        .unwrap();
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    bytes[sof + 5..sof + 7].copy_from_slice(&16_000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&16_000u16.to_be_bytes());
    bytes.truncate(2048);
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
pub fn build_hostile_folder(dir: &Path) -> BTreeMap<Vec<u8>, Option<&'static str>> {
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
    // JPEG decoders would invent the missing rest as grey: refused, with how much is there.
    put(
        b"truncated_scan.jpg",
        &good_jpg[..good_jpg.len() / 2],
        Some("% of the image data present"),
    );
    put(b"tiny_bomb.jpg", &tiny_jpeg_bomb(0), Some("truncated: 0.0"));
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

/// Runs `cmd` to completion; its output and its peak resident memory in MB (from
/// `wait4`, so only this child counts, whatever else the test process runs).
pub fn output_and_peak_rss(cmd: Command) -> (Output, f64) {
    output_and_peak_rss_killed_after(cmd, None)
}

/// `output_and_peak_rss`, sending the child SIGKILL after `kill_after` if it still runs.
pub fn output_and_peak_rss_killed_after(
    mut cmd: Command,
    kill_after: Option<std::time::Duration>,
) -> (Output, f64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // Reaped below by `wait4`, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (mut out_pipe, mut err_pipe) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    // Drain both pipes on threads, so a chatty child cannot fill one and stall.
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        out_pipe.read_to_end(&mut v).map(|_| v)
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        err_pipe.read_to_end(&mut v).map(|_| v)
    });
    let started = std::time::Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child, writing into the two locals. Polling (WNOHANG)
        // keeps the kill on this thread, before the child is reaped: its pid cannot have
        // been reused when the signal goes.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(waited == 0 || waited == pid, "wait4");
        if waited == pid {
            break;
        }
        if kill_after.is_some_and(|after| started.elapsed() >= after) {
            // SAFETY: a signal to our own child, not reaped yet (see above).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_thread.join().unwrap().unwrap(),
        stderr: err_thread.join().unwrap().unwrap(),
    };
    (output, usage.ru_maxrss as f64 / 1024.0)
}
