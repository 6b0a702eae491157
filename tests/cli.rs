//! The real binary on small generated folders: output formats, the cache, bad input,
//! exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn snowscope(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `n` distinct small images: coloured discs on gradients.
fn write_images(dir: &Path, n: usize) {
    for i in 0..n {
        let img = image::RgbImage::from_fn(96, 64, |x, y| {
            let (cx, cy) = (20.0 + 9.0 * i as f32, 32.0);
            let inside =
                (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < 150.0 + 40.0 * i as f32;
            if inside {
                image::Rgb([(40 * i % 255) as u8, 200, (90 + 30 * i % 160) as u8])
            } else {
                image::Rgb([(x * 2) as u8, (y * 3) as u8, (i * 20) as u8])
            }
        });
        img.save(dir.join(format!("img{i:02}.png"))).unwrap();
    }
}

#[test]
fn rank_formats_cache_and_incremental_updates() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 6);
    std::fs::copy(
        dir.path().join("img00.png"),
        dir.path().join("copy_of_00.png"),
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();

    let out = snowscope(&["rank", d, "--format", "json", "--top", "0"], cache.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Seven files, six distinct contents: one model run each.
    assert!(
        text(&out.stderr).contains("7 images (6 distinct), 0 from the cache"),
        "{}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    for key in snowscope::export::COLUMNS {
        assert!(images[0].get(key).is_some(), "JSON row lacks {key}");
    }
    // Every image carries its morphology; the report says which profile ranked them.
    for (name, _, _) in snowscope::traits::TRAITS {
        assert!(
            images[0]["traits"][name].is_number(),
            "JSON traits lack {name}"
        );
    }
    assert!(json["config"]["profile_used"]["profile"].is_string());
    assert!(json["stats"]["q1"].is_number() && json["skipped"].as_array().unwrap().is_empty());
    let fence = json["stats"]["upper_fence"].as_f64().unwrap();
    let beyond: Vec<&str> = images
        .iter()
        .filter(|i| i["score"].as_f64().unwrap() > fence)
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    let listed: Vec<&str> = json["beyond_upper_fence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, beyond);
    // The byte-identical copy is in a group of 2 and its closest match is not its twin.
    let copy = images
        .iter()
        .find(|i| i["path"] == "copy_of_00.png")
        .unwrap();
    assert_eq!(copy["duplicates"], 2);
    assert_ne!(copy["closest_match"], "img00.png");
    // Ranks are 1..n and scores descend.
    let scores: Vec<f64> = images
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));

    // Second run: everything from the cache.
    let out = snowscope(&["rank", d, "--format", "csv"], cache.path());
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("7 images (6 distinct), 6 from the cache"),
        "{}",
        text(&out.stderr)
    );
    let csv = text(&out.stdout);
    // The ranking's columns, then one per morphology trait.
    let header = csv.lines().next().unwrap();
    let traits: Vec<&str> = snowscope::traits::TRAITS.iter().map(|t| t.0).collect();
    assert_eq!(
        header,
        format!(
            "rank,path,score,nn_distance,knn_mean,lof,closest_match,duplicates,beyond_fence,\
             marked,region_x0,region_y0,region_x1,region_y1,top_trait,top_trait_value,\
             top_trait_percentile,{}",
            traits.join(",")
        )
    );
    let fields = csv.lines().nth(1).unwrap().split(',').count();
    assert_eq!(fields, 17 + traits.len(), "every row has every column");
    assert_eq!(csv.lines().count(), 8);

    // One changed and one added file: only those two are extracted.
    image::RgbImage::from_pixel(50, 50, image::Rgb([250, 10, 10]))
        .save(dir.path().join("img03.png"))
        .unwrap();
    image::RgbImage::from_pixel(40, 70, image::Rgb([10, 10, 250]))
        .save(dir.path().join("new.png"))
        .unwrap();
    let out = snowscope(&["rank", d], cache.path());
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("8 images (7 distinct), 5 from the cache"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .starts_with("rank")
    );
}

#[test]
fn bad_files_are_skipped_with_reasons_and_a_distinct_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 3);
    std::fs::write(dir.path().join("empty.png"), b"").unwrap();
    std::fs::write(dir.path().join("notes.jpg"), b"this is text, not a JPEG").unwrap();
    let good = std::fs::read(dir.path().join("img00.png")).unwrap();
    std::fs::write(dir.path().join("truncated.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("evil\x1b[2J.png"), b"\x1b]0;pwned\x07").unwrap();
    let out = snowscope(
        &["rank", dir.path().to_str().unwrap(), "--format", "json"],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("empty.png: empty file"), "{stderr}");
    assert!(
        stderr.contains("notes.jpg: not a recognised image format"),
        "{stderr}"
    );
    assert!(stderr.contains("truncated.png"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "an escape sequence reached the terminal"
    );
    assert!(stderr.contains("evil\\x1b[2J.png"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(json["images"].as_array().unwrap().len(), 3);
}

#[test]
fn empty_and_single_image_folders() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = snowscope(&["rank", empty.path().to_str().unwrap()], cache.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nothing to rank"));
    let one = tempfile::tempdir().unwrap();
    write_images(one.path(), 1);
    let out = snowscope(&["rank", one.path().to_str().unwrap()], cache.path());
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("no neighbour"));
    let missing = snowscope(&["rank", "/definitely/not/here"], cache.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot"));
}

#[test]
fn features_export_round_trips_through_rank() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    write_images(dir.path(), 4);
    let npy = out_dir.path().join("f.npy");
    let out = snowscope(
        &[
            "features",
            dir.path().to_str().unwrap(),
            "--out",
            npy.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (data, rows, cols) = snowscope::npy::read(&npy).unwrap();
    assert_eq!((rows, cols, data.len()), (4, 1280, 4 * 1280));
    let paths = npy.with_extension("paths.txt");
    assert_eq!(std::fs::read_to_string(&paths).unwrap().lines().count(), 4);
    let from_npy = snowscope(
        &[
            "rank",
            "--features",
            npy.to_str().unwrap(),
            "--paths",
            paths.to_str().unwrap(),
            "--format",
            "csv",
        ],
        cache.path(),
    );
    assert!(from_npy.status.success(), "{}", text(&from_npy.stderr));
    let from_dir = snowscope(
        &["rank", dir.path().to_str().unwrap(), "--format", "csv"],
        cache.path(),
    );
    let scores = |o: &Output| -> Vec<String> {
        text(&o.stdout)
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect()
    };
    assert_eq!(
        scores(&from_npy),
        scores(&from_dir),
        "same features, same scores"
    );
}

#[cfg(unix)]
#[test]
fn hostile_file_names_never_reach_the_terminal_raw() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 3);
    let names: [&[u8]; 3] = [
        b"new\nline.png",
        b"\x1b]0;title\x07bell.png",
        b"latin1-\xe9t\xe9.png",
    ];
    for (i, name) in names.iter().enumerate() {
        let from = dir.path().join(format!("img0{i}.png"));
        std::fs::rename(&from, dir.path().join(std::ffi::OsStr::from_bytes(name))).unwrap();
    }
    // A dangling symlink: the file vanished after it was listed.
    std::os::unix::fs::symlink(dir.path().join("gone.png"), dir.path().join("dangling.png"))
        .unwrap();
    let out = snowscope(
        &["rank", dir.path().to_str().unwrap(), "--top", "0"],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains('\x1b') && !stream.contains('\x07'),
            "raw control bytes in {stream:?}"
        );
    }
    assert!(stdout.contains("new\\nline.png"), "{stdout}");
    assert!(stdout.contains("\\x1b]0;title\\x07bell.png"), "{stdout}");
    assert!(stdout.contains("latin1-\u{fffd}t\u{fffd}.png"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        4,
        "header + 3 images, one line each"
    );
    assert!(
        stderr.contains("dangling.png: cannot read file"),
        "{stderr}"
    );
}

#[test]
fn synth_count_is_the_number_of_images_written() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .args(["synth", "--count", "12", "--size", "64", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pngs = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(pngs, 12, "copies and near copies included");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("manifest.json")).unwrap())
            .unwrap();
    let images = manifest["images"].as_array().unwrap();
    let copies = images
        .iter()
        .filter(|i| !i["duplicate_of"].is_null())
        .count();
    let near = images
        .iter()
        .filter(|i| !i["near_duplicate_of"].is_null())
        .count();
    assert_eq!((images.len(), copies, near), (12, 3, 3));
    assert!(text(&out.stderr).contains("wrote 12 images"));
    // Fewer images than the copies need is a clear error, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .args(["synth", "--count", "6", "--out"])
        .arg(out_dir.path().join("small"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot hold"),
        "{}",
        text(&out.stderr)
    );
}

/// `--precision bf16` where it cannot run (forced here by `SNOWSCOPE_KERNELS=avx2`, under
/// which every CPU is treated as lacking AMX and AVX512-BF16) is a clear error naming the way out, and the
/// default then runs in FP32, as the description says.
#[test]
fn bf16_without_a_bf16_engine_is_a_clear_error_and_the_default_is_f32() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 3);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_snowscope"))
            .env("SNOWSCOPE_KERNELS", "avx2")
            .arg("rank")
            .arg(dir.path())
            .args(["--format", "json", "--no-explain", "--cache-dir"])
            .arg(cache.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--precision", "bf16"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--precision f32"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("on cpu (f32)"),
        "{}",
        text(&out.stdout)
    );
}

/// `--exact` is a ranking setting like the score: `eval` (and the explorer) take it too,
/// and it reaches the search (the JSON config of `rank` records it).
#[test]
fn exact_is_accepted_by_eval_and_recorded_by_rank() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 5);
    let truth = dir.path().join("truth.txt");
    std::fs::write(&truth, "img04.png\n").unwrap();
    let out = snowscope(
        &[
            "eval",
            dir.path().to_str().unwrap(),
            "--exact",
            "--truth",
            truth.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("AUROC"), "{}", text(&out.stdout));
    let out = snowscope(
        &[
            "rank",
            dir.path().to_str().unwrap(),
            "--exact",
            "--format",
            "json",
            "--no-explain",
        ],
        cache.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["config"]["exact"], true, "{json}");
    assert_eq!(json["config"]["search"]["method"], "exact", "{json}");
}

/// The sizes of the `.safetensors` feature caches in `cache`, smallest first.
fn feature_cache_sizes(cache: &Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    sizes.sort();
    sizes
}

#[test]
fn an_f16_cache_is_its_own_half_sized_file_and_ranks_alike_cold_and_warm() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_images(dir.path(), 6);
    let d = dir.path().to_str().unwrap();
    let rank = |extra: &[&str]| {
        let mut args = vec!["rank", d, "--format", "csv", "--top", "0"];
        args.extend_from_slice(extra);
        let out = snowscope(&args, cache.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let half = ["--cache-precision", "f16"];
    let (f32_csv, _) = rank(&[]);
    let (cold, stderr) = rank(&half);
    assert!(
        stderr.contains("0 from the cache"),
        "its own cache: {stderr}"
    );
    let (warm, stderr) = rank(&half);
    assert!(stderr.contains("6 from the cache"), "{stderr}");
    // The first run ranks the rounded rows it saves, so the warm run agrees to the byte.
    assert_eq!(cold, warm);
    // Rounding moves the distances a little, never the order of these distinct images.
    let paths = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(paths(&cold), paths(&f32_csv));
    // Two files: the f16 one holds the 6 x features in 2 bytes a value, not 4.
    let sizes = feature_cache_sizes(cache.path());
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    let features = 6 * 1472;
    assert!(sizes[1] - sizes[0] > features as u64 * 2 - 64, "{sizes:?}");
}
