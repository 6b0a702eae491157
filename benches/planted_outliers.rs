//! Ranking quality on planted-outlier sets, to choose the default score, k, normalisation
//! and pooling (the README's quality table).
//!
//! fashion200 (real photos, ../shared/datasets/fashion200): for every class, 20 images of
//! that class plus 2 drawn from other classes, `DRAWS` random draws per class; the planted
//! images are the positives. The bundled snowflakes: the manifest's rare crystals.
//! Features are extracted once per pooling (cached) and every setting ranks the same sets.
//!
//! Run: `cargo bench --bench planted_outliers` (prints a markdown table).

#[path = "common/mean.rs"]
mod mean;

#[path = "common/precision.rs"]
mod precision;

use mean::Mean;
use precision::{cache_precision, precision};
use snowscope::eval::{is_listed, read_truth};
use snowscope::model::{ModelConfig, Pooling};
use snowscope::pipeline::{CacheMode, FeatureSet, PipelineConfig, compute_features};
use snowscope::profile::Profile;
use snowscope::rank::{RankConfig, ScoreKind, rank};
use snowscope::rng::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

const DRAWS: usize = 20;
const PLANTED: usize = 2;

fn features(dir: &Path, pooling: Pooling) -> FeatureSet {
    let cfg = PipelineConfig {
        // The head alone: this bench chooses the photos profile's settings
        // (benches/real_snow.rs measures the crystals profile).
        model: ModelConfig {
            layer: Some("head".into()),
            pooling,
            precision: precision(),
            ..Default::default()
        },
        batch_size: 32,
        threads: 2,
        cache: CacheMode::Default,
        cache_precision: cache_precision(),
    };
    compute_features(dir, &cfg, &AtomicBool::new(false), &mut |_| {}).expect("features")
}

/// Ranks the subset `rows` of `set` and returns positive flags in ranked order.
fn ranked_flags(
    set: &FeatureSet,
    rows: &[usize],
    positive: &dyn Fn(usize) -> bool,
    cfg: &RankConfig,
) -> Vec<bool> {
    let paths: Vec<String> = rows.iter().map(|&r| set.items[r].rel.clone()).collect();
    let hashes: Vec<&str> = rows.iter().map(|&r| set.items[r].hash.as_str()).collect();
    let features = set.features().expect("features of a fresh cache");
    let data: Vec<f32> = rows
        .iter()
        .flat_map(|&r| features.row(r).into_owned())
        .collect();
    let ranking = rank(&paths, &hashes, &data, set.dim, cfg);
    ranking
        .images
        .iter()
        .map(|i| positive(rows[i.index]))
        .collect()
}

fn settings() -> Vec<(String, RankConfig)> {
    let mut out = Vec::new();
    for normalise in [true, false] {
        let geometry = if normalise { "cosine" } else { "raw" };
        out.push((
            format!("nn, {geometry}"),
            RankConfig {
                k: 1,
                normalise,
                score: ScoreKind::Nn,
                squared: false,
                profile: Profile::Photos,
                ..RankConfig::default()
            },
        ));
        for k in [3, 5, 10] {
            out.push((
                format!("knn k={k}, {geometry}"),
                RankConfig {
                    k,
                    normalise,
                    score: ScoreKind::Knn,
                    squared: false,
                    profile: Profile::Photos,
                    ..RankConfig::default()
                },
            ));
        }
        for k in [5, 10] {
            out.push((
                format!("lof k={k}, {geometry}"),
                RankConfig {
                    k,
                    normalise,
                    score: ScoreKind::Lof,
                    squared: false,
                    profile: Profile::Photos,
                    ..RankConfig::default()
                },
            ));
        }
    }
    out
}

fn fashion(dir: &Path, pooling: Pooling, results: &mut HashMap<String, Mean>) {
    let set = features(dir, pooling);
    let classes: Vec<HashMap<String, String>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("classes.json")).unwrap()).unwrap();
    let class_of: HashMap<String, String> = classes.into_iter().flatten().collect();
    let label: Vec<&str> = set
        .items
        .iter()
        .map(|i| class_of[i.rel.trim_end_matches(".jpg")].as_str())
        .collect();
    let mut names: Vec<&str> = label.clone();
    names.sort();
    names.dedup();
    let mut rng = Rng::new(7);
    for class in &names {
        let inliers: Vec<usize> = (0..label.len()).filter(|&i| label[i] == *class).collect();
        let others: Vec<usize> = (0..label.len()).filter(|&i| label[i] != *class).collect();
        for _ in 0..DRAWS {
            let mut rows = inliers.clone();
            while rows.len() < inliers.len() + PLANTED {
                let pick = others[rng.below(others.len())];
                if !rows.contains(&pick) {
                    rows.push(pick);
                }
            }
            for (name, cfg) in settings() {
                let flags = ranked_flags(&set, &rows, &|r| label[r] != *class, &cfg);
                results.entry(name).or_default().add(&flags);
            }
        }
    }
}

fn snowflakes(dir: &Path, pooling: Pooling, results: &mut HashMap<String, Mean>) {
    let truth = read_truth(&dir.join("manifest.json")).expect("manifest");
    let set = features(dir, pooling);
    let rows: Vec<usize> = (0..set.items.len()).collect();
    for (name, cfg) in settings() {
        let flags = ranked_flags(&set, &rows, &|r| is_listed(&truth, &set.items[r].rel), &cfg);
        results.entry(name).or_default().add(&flags);
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fashion_dir = root.join("../shared/datasets/fashion200");
    let snow_dir = root.join("data/snowflakes");
    println!("| pooling | setting | fashion200 AUROC | AP | P@2 | snowflakes AUROC | AP | P@k |");
    println!("|---|---|---|---|---|---|---|---|");
    for pooling in [Pooling::Avg, Pooling::Max, Pooling::None] {
        let mut fashion_results = HashMap::new();
        let mut snow_results = HashMap::new();
        if fashion_dir.is_dir() {
            fashion(&fashion_dir, pooling, &mut fashion_results);
        } else {
            eprintln!(
                "{} is absent: fashion200 columns left empty",
                fashion_dir.display()
            );
        }
        if snow_dir.join("manifest.json").is_file() {
            snowflakes(&snow_dir, pooling, &mut snow_results);
        }
        for (name, _) in settings() {
            let f = fashion_results.get(&name).copied().unwrap_or_default();
            let s = snow_results.get(&name).copied().unwrap_or_default();
            println!("| {pooling:?} | {name} | {} | {} |", f.cells(), s.cells());
        }
    }
}
