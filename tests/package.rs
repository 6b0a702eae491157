//! Installable anywhere: the published package fits crates.io's 10 MB limit and leaves the
//! bundled images out, and the binary, copied away from its checkout with an empty cache
//! and home, grows the bundled snowflakes byte for byte and ranks them as the checkout's
//! copy is ranked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// crates.io refuses a `.crate` larger than this.
const CRATES_IO_LIMIT: u64 = 10 * 1000 * 1000;

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_package_fits_crates_io_and_leaves_the_images_out() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = tempfile::tempdir().unwrap();
    let list = Command::new(&cargo)
        .args(["package", "--list", "--allow-dirty"])
        .current_dir(checkout())
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list.stderr));
    let files = text(&list.stdout);
    assert!(
        files
            .lines()
            .any(|f| f == "weights/efficientnet-lite0.f16.safetensors"),
        "the bundled weights are packaged"
    );
    for left_out in ["data/", "weights/efficientnet-lite0.safetensors"] {
        assert!(
            !files.lines().any(|f| f.starts_with(left_out)),
            "{left_out} is packaged:\n{files}"
        );
    }
    let out = Command::new(&cargo)
        .args(["package", "--no-verify", "--allow-dirty", "--target-dir"])
        .arg(target.path())
        .current_dir(checkout())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let crate_file = std::fs::read_dir(target.path().join("package"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "crate"))
        .expect("a .crate file");
    let size = std::fs::metadata(&crate_file).unwrap().len();
    eprintln!("{}: {:.2} MB", crate_file.display(), size as f64 / 1e6);
    assert!(size <= CRATES_IO_LIMIT, "{size} bytes");
}

/// `rank --format csv --top 0` on the default folder with the cache and home in `home`.
fn rank_default_folder(binary: &Path, home: &Path) -> (i32, String, String) {
    let out = Command::new(binary)
        .args(["rank", "--format", "csv", "--top", "0"])
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .current_dir(home)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "png" || x == "json"))
        .map(|p: PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_installed_binary_grows_the_bundled_snowflakes_and_ranks_them() {
    // The binary alone, as `cargo install` leaves it: no checkout above it.
    let away = tempfile::tempdir().unwrap();
    let binary = away.path().join("snowscope");
    std::fs::copy(env!("CARGO_BIN_EXE_snowscope"), &binary).unwrap();
    let home = tempfile::tempdir().unwrap();
    let (code, csv, stderr) = rank_default_folder(&binary, home.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("growing the bundled snowflakes"),
        "{stderr}"
    );
    let grown = snowscope::demo::grown_dir(&home.path().join("cache/snowscope"));
    let bundled = checkout().join("data/snowflakes");
    let (grown_files, bundled_files) = (files_of(&grown), files_of(&bundled));
    assert_eq!(grown_files.len(), 187, "186 images and the manifest");
    for ((name, bytes), (want_name, want)) in grown_files.iter().zip(&bundled_files) {
        assert_eq!(name, want_name);
        assert!(bytes == want, "{name} differs from the bundled copy");
    }
    // Ranked as the checkout's copy is ranked.
    let checkout_home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .args(["rank", "--format", "csv", "--top", "0", "--cache-dir"])
        .arg(checkout_home.path())
        .arg(&bundled)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(csv, text(&out.stdout));
    // The second run finds the grown set and grows nothing.
    let (code, again, stderr) = rank_default_folder(&binary, home.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("growing"), "{stderr}");
    assert_eq!(again, csv);
}
