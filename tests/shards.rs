//! Sharded extraction: three `features --shard I/3` processes run side by side, then
//! `rank --features` on their parts gives byte for byte the CSV of one unsharded run; and
//! parts that do not belong together are refused with a clear error, never united.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn snowscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snowscope"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 14 distinct pictures, a byte-identical copy and a broken file.
fn folder(dir: &Path) {
    std::fs::create_dir(dir.join("sub")).unwrap();
    for i in 0..14u32 {
        let img = image::RgbImage::from_fn(80, 60, |x, y| {
            let d = (x as f32 - 5.0 * i as f32).hypot(y as f32 - 30.0);
            if d < 8.0 + i as f32 {
                image::Rgb([(i * 17) as u8, 200, 40])
            } else {
                image::Rgb([(x * 3) as u8, (y * 4) as u8, (i * 9) as u8])
            }
        });
        let name = if i % 4 == 0 {
            format!("sub/img{i:02}.png")
        } else {
            format!("img{i:02}.png")
        };
        img.save(dir.join(name)).unwrap();
    }
    std::fs::copy(dir.join("img01.png"), dir.join("copy_of_01.png")).unwrap();
    std::fs::write(dir.join("broken.jpg"), b"not a picture").unwrap();
}

/// A refusal: exit 1, nothing on stdout, and `words` in the reason.
fn assert_refused(out: Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "{words}: {}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains(words),
        "want {words:?}: {}",
        text(&out.stderr)
    );
}

fn rank(args: &[&std::ffi::OsStr]) -> Output {
    snowscope()
        .arg("rank")
        .args(args)
        .args(["--format", "csv", "--top", "0"])
        .output()
        .unwrap()
}

fn parts(dir: &Path, names: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args = vec!["--features".into()];
    args.extend(names.iter().map(|n| dir.join(n).into_os_string()));
    args
}

/// Runs shards `1..=count` of `images` as parallel processes into `out/<prefix>_I.npy`.
fn extract_shards(images: &Path, out: &Path, prefix: &str, count: usize, extra: &[&str]) {
    let cache = out.join(format!("cache-{prefix}"));
    let children: Vec<_> = (1..=count)
        .map(|i| {
            snowscope()
                .arg("features")
                .arg(images)
                .args(["--shard", &format!("{i}/{count}"), "--out"])
                .arg(out.join(format!("{prefix}_{i}.npy")))
                .arg("--cache-dir")
                .arg(&cache)
                .args(extra)
                .output()
        })
        .collect();
    for child in children {
        let out = child.unwrap();
        // 0, or 3 for the shard that holds the broken file.
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn three_shards_rank_exactly_as_one_run_and_bad_parts_are_refused() {
    let images = tempfile::tempdir().unwrap();
    folder(images.path());
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let whole = snowscope()
        .arg("rank")
        .arg(images.path())
        .args(["--format", "csv", "--top", "0", "--cache-dir"])
        .arg(w.join("cache-whole"))
        .output()
        .unwrap();
    assert_eq!(whole.status.code(), Some(3), "{}", text(&whole.stderr));

    // The shards run at the same time, as a job array's tasks would.
    std::thread::scope(|s| {
        s.spawn(|| extract_shards(images.path(), w, "part", 3, &[]));
        s.spawn(|| extract_shards(images.path(), w, "head", 3, &["--layer", "head"]));
    });
    let names = ["part_1.npy", "part_2.npy", "part_3.npy"];
    let rows: usize = names
        .iter()
        .map(|n| {
            std::fs::read_to_string(w.join(n).with_extension("paths.txt"))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(rows, 15, "every decodable image in exactly one part");
    let union = rank(
        &parts(w, &names)
            .iter()
            .map(|a| a.as_os_str())
            .collect::<Vec<_>>(),
    );
    assert_eq!(union.status.code(), Some(3), "{}", text(&union.stderr));
    assert_eq!(
        text(&union.stdout),
        text(&whole.stdout),
        "byte-identical CSV"
    );
    assert!(
        text(&union.stderr).contains("broken.jpg"),
        "the skip is reported once"
    );

    // Parts that do not make one folder's union: exit 1 and a reason, no ranking.
    let refused = |args: Vec<std::ffi::OsString>, words: &str| {
        assert_refused(
            rank(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>()),
            words,
        )
    };
    refused(
        parts(w, &["part_1.npy", "part_2.npy"]),
        "shard 3/3 is missing",
    );
    refused(
        parts(w, &["part_1.npy", "part_2.npy", "part_2.npy", "part_3.npy"]),
        "again",
    );
    refused(
        parts(w, &["part_1.npy", "head_2.npy", "part_3.npy"]),
        "another model or layers",
    );
    // A part of another folder.
    let other = tempfile::tempdir().unwrap();
    folder(other.path());
    extract_shards(other.path(), w, "other", 3, &[]);
    refused(
        parts(w, &["part_1.npy", "other_2.npy", "part_3.npy"]),
        "made from folder",
    );
    // Damaged parts: a missing or short path list, a truncated matrix, a sidecar that
    // claims another shard (its images would then be in two shards).
    let copy_part = |from: &str, to: &str| -> PathBuf {
        for ext in ["npy", "paths.txt", "shard.json"] {
            std::fs::copy(
                w.join(from).with_extension(ext),
                w.join(to).with_extension(ext),
            )
            .unwrap();
        }
        w.join(to)
    };
    let p = copy_part("part_2.npy", "nolist.npy");
    std::fs::remove_file(p.with_extension("paths.txt")).unwrap();
    refused(
        parts(w, &["part_1.npy", "nolist.npy", "part_3.npy"]),
        "cannot read",
    );
    let p = copy_part("part_2.npy", "short.npy");
    let list = std::fs::read_to_string(p.with_extension("paths.txt")).unwrap();
    let first_line = list.lines().next().unwrap().to_string() + "\n";
    std::fs::write(p.with_extension("paths.txt"), first_line).unwrap();
    refused(
        parts(w, &["part_1.npy", "short.npy", "part_3.npy"]),
        "paths",
    );
    let p = copy_part("part_2.npy", "cut.npy");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    refused(
        parts(w, &["part_1.npy", "cut.npy", "part_3.npy"]),
        "data bytes",
    );
    let p = copy_part("part_1.npy", "relabelled.npy");
    let json = std::fs::read_to_string(p.with_extension("shard.json")).unwrap();
    let json = json.replace("\"index\":1", "\"index\":2");
    std::fs::write(p.with_extension("shard.json"), json).unwrap();
    refused(
        parts(w, &["part_1.npy", "relabelled.npy", "part_3.npy"]),
        "does not belong to shard 2/3",
    );
}

/// `rank --rows I/3` as three processes side by side, then `rank --neighbours` with their
/// files: the CSV of the exact search, byte for byte; blocks that do not make up this
/// search are refused with a reason.
#[test]
fn row_blocks_rank_exactly_as_one_search_and_bad_blocks_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // 1,300 rows (three tiles of the exact search, so every block has pairs to compare),
    // one of them repeated.
    let (n, dim) = (1300, 16);
    let mut rng = snowscope::rng::Rng::new(5);
    let mut data: Vec<f32> = (0..n * dim).map(|_| rng.f32()).collect();
    data.copy_within(0..dim, 900 * dim);
    let write_features = |name: &str, data: &[f32]| -> Vec<std::ffi::OsString> {
        let npy = w.join(format!("{name}.npy"));
        snowscope::npy::write(&npy, data, n, dim).unwrap();
        let list = npy.with_extension("paths.txt");
        std::fs::write(
            &list,
            (0..n)
                .map(|i| format!("img{i:04}.png\n"))
                .collect::<String>(),
        )
        .unwrap();
        vec![
            "--features".into(),
            npy.into(),
            "--paths".into(),
            list.into(),
        ]
    };
    let features = write_features("x", &data);
    let blocks = |features: &[std::ffi::OsString], tag: &str, count: usize, extra: &[&str]| {
        let children: Vec<_> = (1..=count)
            .map(|i| {
                let out = w.join(format!("{tag}_{i}.block"));
                let child = snowscope()
                    .arg("rank")
                    .args(features)
                    .args(["--rows", &format!("{i}/{count}"), "-o"])
                    .arg(&out)
                    .args(extra)
                    .spawn()
                    .unwrap();
                (child, out)
            })
            .collect();
        children
            .into_iter()
            .map(|(mut child, out)| {
                assert!(child.wait().unwrap().success());
                out.into_os_string()
            })
            .collect::<Vec<_>>()
    };
    let with = |parts: &[std::ffi::OsString], extra: &[&str]| {
        let mut args = features.clone();
        args.push("--neighbours".into());
        args.extend(parts.iter().cloned());
        args.extend(extra.iter().map(Into::into));
        rank(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>())
    };
    let exact = rank(
        &features
            .iter()
            .map(|a| a.as_os_str())
            .chain([std::ffi::OsStr::new("--exact")])
            .collect::<Vec<_>>(),
    );
    assert!(exact.status.success(), "{}", text(&exact.stderr));
    let parts = blocks(&features, "b", 3, &[]);
    let merged = with(&parts, &[]);
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    assert_eq!(
        text(&merged.stdout),
        text(&exact.stdout),
        "byte-identical CSV"
    );
    assert_eq!(text(&exact.stdout).lines().count(), n + 1);

    let refused = assert_refused;
    refused(with(&parts[..2], &[]), "block 3/3 missing");
    refused(
        with(&[&parts[..], &parts[..1]].concat(), &[]),
        "given twice",
    );
    refused(with(&parts, &["--k", "5"]), "needs 5");
    let mut moved = data.clone();
    moved[0] += 0.5;
    let other = blocks(&write_features("moved", &moved), "m", 3, &[]);
    refused(
        with(&[parts[0].clone(), other[1].clone(), parts[2].clone()], &[]),
        "other feature values",
    );
    let cut = w.join("cut.block");
    let bytes = std::fs::read(&parts[1]).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(
        with(&[parts[0].clone(), cut.into(), parts[2].clone()], &[]),
        "truncated",
    );
}
