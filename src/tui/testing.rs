//! Fixtures for the explorer's tests and benchmarks: rankings without running the model.

use super::app::Loaded;
use crate::rank::{self, BoxStats, RankConfig, RankedImage, Ranking};
use std::path::PathBuf;

/// Ranks points in the plane as if they were feature vectors (raw L2, k = 3). Names are
/// `flakeNN.png`; files live under `dir` (they need not exist unless previews are drawn).
pub fn ranked_points(points: &[[f32; 2]], hashes: &[&str], dir: &std::path::Path) -> Loaded {
    let paths: Vec<String> = (0..points.len())
        .map(|i| format!("flake{:02}.png", i + 1))
        .collect();
    let data: Vec<f32> = points.iter().flatten().copied().collect();
    let cfg = RankConfig {
        k: 3,
        normalise: false,
        score: rank::ScoreKind::Nn,
        squared: false,
        profile: crate::profile::Profile::Photos,
        exact: false,
    };
    let ranking = rank::rank(&paths, hashes, &data, 2, &cfg);
    Loaded {
        files: paths.iter().map(|p| dir.join(p)).collect(),
        hashes: hashes.iter().map(|h| h.to_string()).collect(),
        root: dir.to_path_buf(),
        marks: crate::store::Marks::in_memory(),
        ranking,
        model: "fixture points".into(),
        skipped: Vec::new(),
        checking: false,
    }
}

/// Twelve points: a tight cluster, a looser one, two far points and a pair of copies.
pub fn small() -> Loaded {
    small_in(std::path::Path::new("/nonexistent"))
}

/// The points of `small()` and their content hashes (the last two are copies).
pub const SMALL_POINTS: [[f32; 2]; 12] = [
    [0.0, 0.0],
    [0.1, 0.0],
    [0.0, 0.12],
    [0.14, 0.1],
    [1.0, 1.0],
    [1.3, 1.0],
    [1.0, 1.4],
    [1.35, 1.45],
    [4.0, 0.0],
    [0.0, 6.0],
    [2.0, 2.0],
    [2.0, 2.0],
];
pub const SMALL_HASHES: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "k"];

/// `small()`, with image files expected in `dir` (for previews).
pub fn small_in(dir: &std::path::Path) -> Loaded {
    ranked_points(&SMALL_POINTS, &SMALL_HASHES, dir)
}

/// `n` images with made-up but consistent scores (a fixed pseudo-random sequence), for
/// benchmarks of the table at sizes the model would take hours to produce.
pub fn synthetic(n: usize) -> Loaded {
    let mut rng = crate::rng::Rng::new(0x2545_F491_4F6C_DD1D);
    let mut next = move || rng.f32();
    let paths: Vec<String> = (0..n)
        .map(|i| format!("batch{:03}/snowflake_{i:06}.png", i % 500))
        .collect();
    let mut images: Vec<RankedImage> = (0..n)
        .map(|i| {
            let nn = 0.2 + next() * next() * 0.8;
            let closest = ((i as f32 + 1.0 + next() * (n as f32 - 2.0)) as usize) % n;
            let neighbours = vec![(closest, nn), ((closest + 1) % n, nn * 1.1)];
            RankedImage {
                rank: 0,
                index: i,
                path: paths[i].clone(),
                score: Some(nn),
                nn_distance: Some(nn),
                closest: Some(closest),
                closest_path: Some(paths[closest].clone()),
                knn_mean: Some(nn * 1.05),
                lof: Some(1.0 + next() * 0.3),
                duplicates: if i % 97 == 0 { 2 } else { 1 },
                beyond_fence: false,
                neighbours,
                traits: Vec::new(),
                explanation: None,
                marked: false,
            }
        })
        .collect();
    let scores: Vec<f32> = images.iter().filter_map(|i| i.score).collect();
    let stats: Option<BoxStats> = rank::box_stats(&scores);
    let fence = stats.map_or(f32::INFINITY, |s| s.upper_fence);
    for image in &mut images {
        image.beyond_fence = image.score.is_some_and(|s| s > fence);
    }
    images.sort_by(|a, b| {
        b.score
            .unwrap_or(0.0)
            .total_cmp(&a.score.unwrap_or(0.0))
            .then_with(|| a.path.cmp(&b.path))
    });
    for (r, image) in images.iter_mut().enumerate() {
        image.rank = r + 1;
    }
    Loaded {
        ranking: Ranking {
            config: RankConfig::default(),
            profile: Default::default(),
            images,
            stats,
        },
        hashes: (0..n).map(|i| format!("h{i}")).collect(),
        files: paths.iter().map(PathBuf::from).collect(),
        root: PathBuf::from("/synthetic"),
        marks: crate::store::Marks::in_memory(),
        model: "synthetic".into(),
        skipped: Vec::new(),
        checking: false,
    }
}
