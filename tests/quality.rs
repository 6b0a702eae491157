//! Ranking quality guard on the bundled snowflakes (data/snowflakes, 186 images, 5 planted
//! rare crystals): fails if the default settings stop finding the rare ones.
//! Measured when the floor was set: AUROC 0.934, AP 0.613, precision@5 0.60.

use snowscope::eval::{is_listed, quality, read_truth};
use snowscope::pipeline::{CacheMode, PipelineConfig, compute_features};
use snowscope::rank::{RankConfig, rank};
use std::path::Path;
use std::sync::atomic::AtomicBool;

const MIN_AUROC: f64 = 0.88;

#[test]
fn default_ranking_finds_the_rare_snowflakes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/snowflakes");
    let truth = read_truth(&dir.join("manifest.json")).unwrap();
    let cfg = PipelineConfig {
        model: Default::default(),
        batch_size: 32,
        threads: 2,
        cache: CacheMode::Off,
    };
    let set = compute_features(&dir, &cfg, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    let paths: Vec<String> = set.items.iter().map(|i| i.rel.clone()).collect();
    let hashes: Vec<&str> = set.items.iter().map(|i| i.hash.as_str()).collect();
    let ranking = rank(&paths, &hashes, &set.data, set.dim, &RankConfig::default());
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
