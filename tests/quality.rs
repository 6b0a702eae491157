//! Ranking quality guards with the default settings (as `snowscope rank` ranks): the
//! bundled snowflakes (data/snowflakes, 186 images, 5 planted rare crystals; AUROC 0.992
//! with the crystals profile, 0.934 before it) and, when the development set is present,
//! real instrument images (../shared/datasets/realsnow-dev, read in place).

use snowscope::eval::{is_listed, quality, read_truth};
use snowscope::pipeline::{CacheMode, FeatureSet, PipelineConfig, compute_features};
use snowscope::profile::Profile;
use snowscope::rank::{RankConfig, Ranking};
use std::path::Path;
use std::sync::atomic::AtomicBool;

const MIN_AUROC: f64 = 0.93;

/// The folder's features (no cache) and its ranking with the default settings, which must
/// have chosen the crystals profile.
fn ranked_with_defaults(dir: &Path) -> (FeatureSet, Ranking) {
    let cfg = PipelineConfig {
        model: Default::default(),
        batch_size: 32,
        threads: 2,
        cache: CacheMode::Off,
        cache_precision: Default::default(),
    };
    let set = compute_features(dir, &cfg, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let ranking = set
        .rank(&RankConfig::default())
        .expect("features of a fresh cache");
    assert_eq!(
        ranking.profile.profile,
        Profile::Crystals,
        "{:?}",
        ranking.profile
    );
    (set, ranking)
}

#[test]
fn default_ranking_finds_the_rare_snowflakes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/snowflakes");
    let truth = read_truth(&dir.join("manifest.json")).unwrap();
    let (set, ranking) = ranked_with_defaults(&dir);
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    let flags: Vec<bool> = ranking
        .images
        .iter()
        .map(|i| is_listed(&truth, &i.path))
        .collect();
    let q = quality(&flags).unwrap();
    println!(
        "snowflakes: AUROC {:.3}, AP {:.3}, P@{} {:.3}",
        q.auroc, q.average_precision, q.k, q.precision_at_k
    );
    assert_eq!(q.positives, 5);
    assert!(
        q.auroc >= MIN_AUROC,
        "AUROC {:.3} fell below {MIN_AUROC}",
        q.auroc
    );
    // The exact copies in the set are recognised as duplicate groups of two.
    assert_eq!(
        ranking.images.iter().filter(|i| i.duplicates == 2).count(),
        6
    );
}

/// One planted-outlier folder of real PIP silhouettes: 60 compact particles and 3 needles
/// (copied to a temporary folder: the set is read, never redistributed). The defaults must
/// choose the crystals profile and rank the needles near the top.
#[test]
fn real_probe_images_rank_planted_habits_high() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/realsnow-dev/pip");
    if !dev.is_dir() {
        eprintln!(
            "skipped: {} is absent (development data, not in the repository)",
            dev.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let take = |class: &str, count: usize| {
        let mut files: Vec<_> = std::fs::read_dir(dev.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files.into_iter().take(count) {
            let name = format!("{class}_{}", file.file_name().unwrap().to_string_lossy());
            std::fs::copy(&file, dir.path().join(name)).unwrap();
        }
    };
    take("compact_particles", 60);
    take("columns_and_needles", 3);
    let (_, ranking) = ranked_with_defaults(dir.path());
    let flags: Vec<bool> = ranking
        .images
        .iter()
        .map(|i| i.path.starts_with("columns_and_needles"))
        .collect();
    let q = quality(&flags).unwrap();
    println!(
        "pip, 60 compact + 3 needles: AUROC {:.3}, AP {:.3}",
        q.auroc, q.average_precision
    );
    assert!(q.auroc >= 0.9, "AUROC {:.3}", q.auroc);
    for image in &ranking.images {
        assert_eq!(image.traits.len(), snowscope::traits::COUNT);
        assert!(image.traits.iter().all(|v| v.is_finite()));
    }
}
