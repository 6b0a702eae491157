//! Soak: a large folder with a share of hostile files, ranked cold, then warm, then killed
//! with SIGKILL at random moments and run again, with what every run got checked.
//!
//! ```sh
//! cargo build --release && cargo run --release --example soak -- [FILES=20000] [SEED=1]
//! ```
//!
//! 5 % of the files are the hostile suite's folder (`tests/support/hostile_files.rs`:
//! every kind of bad input the project knows, tiny JPEG bombs included) repeated in
//! subfolders; the rest are distinct small PNG and JPEG pictures. It reports wall time and
//! peak RSS of each run, the good files ranked (must be all), caches found corrupt (must be
//! 0) and files whose outcome or skip reason is not the expected one (must be 0). Not part
//! of `cargo test`: it takes minutes.

#[path = "../tests/support/hostile_files.rs"]
mod hostile_files;

use hostile_files::{build_hostile_folder, output_and_peak_rss_killed_after, scene};
use snowscope::rng::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Relative path (lossy, as `rank` prints it) -> `None` to be ranked, or words its skip
/// reason must contain.
type Expected = BTreeMap<String, Option<&'static str>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().map_or(20_000, |a| a.parse().expect("FILES"));
    let seed: u64 = args.next().map_or(1, |a| a.parse().expect("SEED"));
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/snowscope");
    assert!(bin.exists(), "build it first: cargo build --release");
    let work = tempfile::tempdir().expect("temp folder");
    let folder = work.path().join("images");
    let started = Instant::now();
    let expected = build_folder(&folder, files);
    let hostile = expected.values().filter(|e| e.is_some()).count();
    let good = expected.len() - hostile;
    println!(
        "folder: {} files ({good} good, {hostile} hostile) made in {:.0} s; seed {seed}",
        expected.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "\n| run | wall s | peak RSS MB | exit | good ranked | wrong outcomes | corrupt caches |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cache = work.path().join("cache");
    let cold = run(&bin, &folder, &cache, None, &expected, "cold");
    run(&bin, &folder, &cache, None, &expected, "warm");
    // Kills land anywhere from the scan to the ranking of a fresh cache.
    let killed_cache = work.path().join("cache-killed");
    let mut rng = Rng::new(seed);
    for i in 1..=5 {
        let at = Duration::from_secs_f64(0.5 + rng.f64() * cold.as_secs_f64() * 0.6);
        run(
            &bin,
            &folder,
            &killed_cache,
            Some(at),
            &expected,
            &format!("kill {i} at {:.1} s", at.as_secs_f64()),
        );
    }
    run(
        &bin,
        &folder,
        &killed_cache,
        None,
        &expected,
        "after the kills",
    );
}

/// `files` files under `dir`: the hostile folder repeated in `hostile_NN/` subfolders for
/// about 5 % of them, distinct pictures for the rest.
fn build_folder(dir: &Path, files: usize) -> Expected {
    let mut expected = Expected::new();
    let mut copy = 0;
    while expected.values().filter(|e| e.is_some()).count() < files / 20 {
        let sub = format!("hostile_{copy:02}");
        std::fs::create_dir_all(dir.join(&sub)).expect("create folder");
        for (name, outcome) in build_hostile_folder(&dir.join(&sub)) {
            expected.insert(format!("{sub}/{}", String::from_utf8_lossy(&name)), outcome);
        }
        copy += 1;
    }
    let mut i = 0u32;
    while expected.len() < files {
        let (w, h) = (64 + i % 97, 48 + i % 61);
        let picture = scene(i % 200 + 1, w, h);
        // Each picture distinct: a few pixels keyed to its index.
        let mut picture = picture;
        for bit in 0..24 {
            let on = (i >> bit) & 1 == 1;
            picture.put_pixel(
                bit % w,
                h - 1,
                image::Rgb(if on { [255; 3] } else { [0; 3] }),
            );
        }
        let name = format!(
            "good/{:03}/img{i:06}.{}",
            i / 1000,
            if i.is_multiple_of(3) { "jpg" } else { "png" }
        );
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
        picture.save(&path).expect("write picture");
        expected.insert(name, None);
        i += 1;
    }
    expected
}

/// One `rank` run, killed after `kill_at` if given; prints its row. Returns its wall time.
fn run(
    bin: &Path,
    folder: &Path,
    cache: &Path,
    kill_at: Option<Duration>,
    expected: &Expected,
    label: &str,
) -> Duration {
    let mut cmd = Command::new(bin);
    cmd.arg("rank")
        .arg(folder)
        .args(["--format", "json", "--top", "0", "--cache-dir"])
        .arg(cache);
    let started = Instant::now();
    let (out, peak_mb) = output_and_peak_rss_killed_after(cmd, kill_at);
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let corrupt = stderr.matches("corrupt").count();
    let (ranked, wrong) = match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
        Ok(json) => check(&json, expected),
        Err(_) => (0, None),
    };
    let exit = out
        .status
        .code()
        .map_or_else(|| "killed".to_string(), |c| c.to_string());
    println!(
        "| {label} | {:.1} | {peak_mb:.0} | {exit} | {ranked} | {} | {corrupt} |",
        wall.as_secs_f64(),
        wrong.map_or("-".into(), |w| w.to_string())
    );
    wall
}

/// Good files ranked, and files whose outcome is not the expected one (printed).
fn check(json: &serde_json::Value, expected: &Expected) -> (usize, Option<usize>) {
    let ranked: Vec<&str> = json["images"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["path"].as_str()).collect())
        .unwrap_or_default();
    let skipped: BTreeMap<&str, &str> = json["skipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s["path"].as_str()?, s["reason"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let ranked_set: std::collections::BTreeSet<&str> = ranked.iter().copied().collect();
    let mut good_ranked = 0;
    let mut wrong = 0;
    for (name, want) in expected {
        let ok = match want {
            None => {
                let ok = ranked_set.contains(name.as_str());
                good_ranked += usize::from(ok);
                ok
            }
            Some(words) => skipped
                .get(name.as_str())
                .is_some_and(|r| r.contains(words)),
        };
        if !ok {
            wrong += 1;
            if wrong <= 5 {
                eprintln!(
                    "  unexpected: {name:?}: want {want:?}, got {:?}",
                    skipped.get(name.as_str())
                );
            }
        }
    }
    (good_ranked, Some(wrong))
}
