//! From features to a ranking: duplicate groups, nearest non-duplicate neighbours, scores,
//! and the boxplot statistics of the score. The TUI and `rank` are views over `Ranking`.

use crate::explain::Explanation;
use crate::linalg::{normalise_rows, quantile};
use crate::neighbours::{
    BlockError, ListCache, Neighbours, SearchOptions, SearchReport, cached_lists, search_block,
    search_cached,
};
use crate::profile::{Choice, Profile};
use crate::scan::Shard;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::Hasher;
use std::path::Path;

/// The number that orders images (larger = more unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// L2 distance to the closest match (the tutorial's score).
    Nn,
    /// Mean L2 distance to the k nearest non-duplicate neighbours.
    Knn,
    /// Local outlier factor over the k nearest neighbours (density-aware).
    Lof,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankConfig {
    /// Neighbours for the k-NN and LOF scores (and shown in the detail view).
    pub k: usize,
    /// L2-normalise feature rows first (cosine geometry).
    pub normalise: bool,
    pub score: ScoreKind,
    /// Report squared L2 distances, as FAISS `IndexFlatL2` does (the tutorial's numbers).
    pub squared: bool,
    /// Which features rank the folder (crystals, photos, or chosen per folder).
    pub profile: Profile,
    /// Compare every pair, whatever the size (otherwise large sets are searched through
    /// an index: `neighbours::SearchOptions`).
    pub exact: bool,
}

/// Defaults chosen by measurement on planted-outlier sets (README, "Ranking quality").
impl Default for RankConfig {
    fn default() -> Self {
        Self {
            k: 3,
            normalise: true,
            score: ScoreKind::Knn,
            squared: false,
            profile: Profile::Auto,
            exact: false,
        }
    }
}

impl RankConfig {
    /// The neighbour search these settings ask for.
    pub fn search(&self) -> SearchOptions {
        SearchOptions {
            exact: self.exact,
            ..SearchOptions::default()
        }
    }

    /// The tutorial's geometry: raw CNN features, squared L2, distance to the closest match.
    pub fn tutorial() -> Self {
        Self {
            k: 1,
            normalise: false,
            score: ScoreKind::Nn,
            squared: true,
            profile: Profile::Photos,
            exact: false,
        }
    }
}

/// One image's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedImage {
    /// 1-based position by score (ties share no rank; order is stable by path).
    pub rank: usize,
    /// Row in the feature set.
    pub index: usize,
    pub path: String,
    /// The chosen score; `None` when the image has no neighbour to compare with.
    pub score: Option<f32>,
    /// Distance to the closest non-duplicate neighbour.
    pub nn_distance: Option<f32>,
    pub closest: Option<usize>,
    pub closest_path: Option<String>,
    pub knn_mean: Option<f32>,
    pub lof: Option<f32>,
    /// Size of the image's duplicate group (1 = unique content).
    pub duplicates: usize,
    pub beyond_fence: bool,
    /// The k nearest non-duplicate neighbours: (row, distance).
    #[serde(skip)]
    pub neighbours: Vec<(usize, f32)>,
    /// The image's morphology (`traits::TRAITS` order); empty when unknown.
    #[serde(skip)]
    pub traits: Vec<f32>,
    /// Why it stands out; filled on request (`FeatureSet::explain`), for the images shown.
    #[serde(skip)]
    pub explanation: Option<Explanation>,
    /// Marked by the user in the explorer (kept with the folder's cache).
    pub marked: bool,
}

/// Five-number summary with Tukey fences (1.5 IQR).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct BoxStats {
    pub count: usize,
    pub min: f32,
    pub q1: f32,
    pub median: f32,
    pub q3: f32,
    pub max: f32,
    pub lower_fence: f32,
    pub upper_fence: f32,
    /// Most extreme data points inside the fences.
    pub lower_whisker: f32,
    pub upper_whisker: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    pub config: RankConfig,
    /// The profile the images were ranked with, and why.
    pub profile: Choice,
    /// Sorted by score, most unique first; images without a score last.
    pub images: Vec<RankedImage>,
    pub stats: Option<BoxStats>,
}

impl Ranking {
    /// Images whose score is beyond the upper Tukey fence, most unique first.
    pub fn outliers(&self) -> impl Iterator<Item = &RankedImage> {
        self.images.iter().filter(|i| i.beyond_fence)
    }
}

/// Group id per row: rows with the same content hash or byte-identical features share one.
pub fn duplicate_groups(hashes: &[&str], data: &[f32], dim: usize) -> Vec<u32> {
    let n = hashes.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_by_hash: HashMap<&str, usize> = HashMap::new();
    // Rows are found by a hash of their bits, then compared bit for bit: keeping every
    // row's bits as a key would copy the whole matrix (1.5 GB at 300,000 x 1280).
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    let row_hashes: Vec<u64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut h = std::hash::DefaultHasher::new();
            row(i).iter().for_each(|v| h.write_u32(v.to_bits()));
            h.finish()
        })
        .collect();
    let mut firsts_by_row: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..n {
        let firsts = firsts_by_row.entry(row_hashes[i]).or_default();
        let first_same_row = match firsts.iter().find(|&&f| same(row(f), row(i))) {
            Some(&f) => f,
            None => {
                firsts.push(i);
                i
            }
        };
        for first in [*first_by_hash.entry(hashes[i]).or_insert(i), first_same_row] {
            let (a, b) = (find(&mut parent, first), find(&mut parent, i));
            parent[a.max(b)] = a.min(b);
        }
    }
    (0..n).map(|i| find(&mut parent, i) as u32).collect()
}

/// Ranks `paths.len()` images whose features are the rows of `data`.
pub fn rank(
    paths: &[String],
    hashes: &[&str],
    data: &[f32],
    dim: usize,
    cfg: &RankConfig,
) -> Ranking {
    rank_cached(paths, hashes, data, dim, cfg, None)
}

/// `rank`, with the neighbour lists remembered in `neighbour_cache`.
pub fn rank_cached(
    paths: &[String],
    hashes: &[&str],
    data: &[f32],
    dim: usize,
    cfg: &RankConfig,
    neighbour_cache: Option<&Path>,
) -> Ranking {
    let search = cfg.search();
    let cache = neighbour_cache.map(|path| ListCache { path, rows: None });
    rank_searched(paths, hashes, data, dim, cfg, cache, &search)
        .expect("without row blocks no file is read that could fail")
        .0
}

/// The rows the neighbour search runs on (normalised if `cfg` says so), their duplicate
/// groups and k: what `rank_searched` searches and `search_rows_block` splits.
fn searched_rows<'a>(
    hashes: &[&str],
    data: &'a [f32],
    dim: usize,
    cfg: &RankConfig,
) -> (std::borrow::Cow<'a, [f32]>, Vec<u32>, usize) {
    assert_eq!(data.len(), hashes.len() * dim, "feature matrix size");
    let data = match cfg.normalise {
        true => {
            let mut d = data.to_vec();
            normalise_rows(&mut d, dim);
            std::borrow::Cow::Owned(d)
        }
        false => std::borrow::Cow::Borrowed(data),
    };
    let groups = duplicate_groups(hashes, &data, dim);
    (data, groups, cfg.k.max(1))
}

/// Block `part` of the exact neighbour search `rank_searched` would run on these rows,
/// written to `out` (`rank --rows I/N`); (tile pairs compared, of how many).
pub fn search_rows_block(
    hashes: &[&str],
    data: &[f32],
    dim: usize,
    cfg: &RankConfig,
    part: Shard,
    out: &Path,
) -> Result<(usize, usize), BlockError> {
    let (data, groups, k) = searched_rows(hashes, data, dim, cfg);
    search_block(&data, dim, k, &groups, part, out)
}

/// `rank_cached` with the neighbour search's options, and how it went. Fails only where
/// the options name row blocks that do not make up this search.
pub fn rank_searched<P: AsRef<str> + Sync>(
    paths: &[P],
    hashes: &[&str],
    data: &[f32],
    dim: usize,
    cfg: &RankConfig,
    cache: Option<ListCache>,
    search: &SearchOptions,
) -> Result<(Ranking, SearchReport), BlockError> {
    assert_eq!(hashes.len(), paths.len(), "one hash per image");
    let (data, groups, k) = searched_rows(hashes, data, dim, cfg);
    let (nn, report) = search_cached(&data, dim, k, &groups, cache, search)?;
    Ok((ranking_of(paths, &nn, &groups, cfg), report))
}

/// The ranking `rank_searched` would give for the rows, `dim` wide, that `cache.rows`
/// stands for, made from the lists it remembers without the rows; `None` when it does
/// not remember them.
pub fn rank_from_cache<P: AsRef<str> + Sync>(
    paths: &[P],
    dim: usize,
    cfg: &RankConfig,
    cache: ListCache,
    search: &SearchOptions,
) -> Option<(Ranking, SearchReport)> {
    let (nn, groups, report) = cached_lists(cache, paths.len(), dim, cfg.k.max(1), search)?;
    Some((ranking_of(paths, &nn, &groups, cfg), report))
}

/// Scores, fences and ranks of the images `paths` from their neighbour lists and
/// duplicate groups.
fn ranking_of<P: AsRef<str> + Sync>(
    paths: &[P],
    nn: &Neighbours,
    groups: &[u32],
    cfg: &RankConfig,
) -> Ranking {
    let path = |i: usize| paths[i].as_ref();
    let n = paths.len();
    // A group's id is one of its rows.
    let mut group_size = vec![0usize; n];
    groups.iter().for_each(|&g| group_size[g as usize] += 1);
    let distance = |d2: f32| if cfg.squared { d2 } else { d2.sqrt() };
    let lof = local_outlier_factor(nn, n);
    let knn_mean = |i: usize| {
        let (sum, count) = nn
            .row(i)
            .fold((0.0f32, 0), |(s, c), (_, d2)| (s + distance(d2), c + 1));
        (count > 0).then(|| sum / count as f32)
    };
    let score = |i: usize| match cfg.score {
        ScoreKind::Nn => nn.row(i).next().map(|(_, d2)| distance(d2)),
        ScoreKind::Knn => knn_mean(i),
        ScoreKind::Lof => lof[i],
    };
    let scores: Vec<Option<f32>> = (0..n).into_par_iter().map(score).collect();
    // The order is found on indices: at a million images, sorting the images themselves
    // moves gigabytes.
    let mut order: Vec<u32> = (0..n as u32).collect();
    let key = |i: u32| scores[i as usize].unwrap_or(f32::NEG_INFINITY);
    order.par_sort_unstable_by(|&a, &b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| path(a as usize).cmp(path(b as usize)))
            .then(a.cmp(&b))
    });
    let finite: Vec<f32> = scores.iter().filter_map(|&s| s).collect();
    let stats = box_stats(&finite);
    let images = order
        .par_iter()
        .enumerate()
        .map(|(r, &i)| {
            let i = i as usize;
            let neighbours: Vec<(usize, f32)> =
                nn.row(i).map(|(j, d2)| (j, distance(d2))).collect();
            let score = scores[i];
            RankedImage {
                rank: r + 1,
                index: i,
                path: path(i).to_string(),
                score,
                nn_distance: neighbours.first().map(|n| n.1),
                closest: neighbours.first().map(|n| n.0),
                closest_path: neighbours.first().map(|n| path(n.0).to_string()),
                knn_mean: knn_mean(i),
                lof: lof[i],
                duplicates: group_size[groups[i] as usize],
                beyond_fence: matches!((score, stats), (Some(s), Some(b)) if s > b.upper_fence),
                neighbours,
                traits: Vec::new(),
                explanation: None,
                marked: false,
            }
        })
        .collect();
    Ranking {
        config: *cfg,
        profile: Choice {
            profile: cfg.profile,
            reason: "features ranked as given".into(),
        },
        images,
        stats,
    }
}

/// Local outlier factor (Breunig et al. 2000) from the k-NN lists; `None` without neighbours.
/// Uses the Euclidean (not squared) distances.
fn local_outlier_factor(nn: &Neighbours, n: usize) -> Vec<Option<f32>> {
    let row = |i: usize| nn.row(i).map(|(j, d2)| (j, d2.sqrt()));
    let k_distance: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| row(i).last().map_or(0.0, |n| n.1))
        .collect();
    // Local reachability density; a tiny floor keeps coincident points finite.
    let lrd: Vec<Option<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (reach, count) = row(i).fold((0.0f32, 0), |(s, c), (j, d)| {
                (s + d.max(k_distance[j]), c + 1)
            });
            (count > 0).then(|| 1.0 / (reach / count as f32).max(1e-12))
        })
        .collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let own = lrd[i]?;
            let (sum, count) = row(i)
                .filter_map(|(j, _)| lrd[j])
                .fold((0.0f32, 0), |(s, c), l| (s + l / own, c + 1));
            (count > 0).then(|| sum / count as f32)
        })
        .collect()
}

/// Boxplot statistics of `values`; `None` when there are none.
pub fn box_stats(values: &[f32]) -> Option<BoxStats> {
    // The explorer passes a million scores already sorted: they are read, not copied.
    let copy: Vec<f32>;
    let sorted = if values.iter().all(|v| v.is_finite()) && values.is_sorted() {
        values
    } else {
        copy = {
            let mut c: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
            c.sort_by(f32::total_cmp);
            c
        };
        &copy
    };
    if sorted.is_empty() {
        return None;
    }
    let (q1, median, q3) = (
        quantile(sorted, 0.25),
        quantile(sorted, 0.5),
        quantile(sorted, 0.75),
    );
    let iqr = q3 - q1;
    let (lower_fence, upper_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    // The whiskers: the extreme values within the fences (the median always is).
    let lowest = sorted.partition_point(|&v| v < lower_fence);
    let highest = sorted.partition_point(|&v| v <= upper_fence) - 1;
    Some(BoxStats {
        count: sorted.len(),
        min: sorted[0],
        q1,
        median,
        q3,
        max: sorted[sorted.len() - 1],
        lower_fence,
        upper_fence,
        lower_whisker: sorted[lowest],
        upper_whisker: sorted[highest],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_stats_by_hand() {
        // Sorted: 1 2 3 4 5 6 7 8 100. Q1 = 3, median = 5, Q3 = 7 (positions 2, 4, 6).
        let s = box_stats(&[5.0, 1.0, 100.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 3.0, 5.0, 7.0, 100.0)
        );
        assert_eq!((s.lower_fence, s.upper_fence), (-3.0, 13.0));
        assert_eq!((s.lower_whisker, s.upper_whisker), (1.0, 8.0));
        // Four values: positions 0.75, 1.5, 2.25 interpolate.
        let s = box_stats(&[1.0, 2.0, 4.0, 8.0]).unwrap();
        assert_eq!((s.q1, s.median, s.q3), (1.75, 3.0, 5.0));
        assert!(box_stats(&[]).is_none());
        let one = box_stats(&[2.5]).unwrap();
        assert_eq!((one.q1, one.q3, one.upper_whisker), (2.5, 2.5, 2.5));
    }

    #[test]
    fn box_stats_read_sorted_values_as_they_are() {
        // Sorted input is read in place; it must give what the same values shuffled give,
        // and values that are not finite are left out either way.
        let sorted = [-50.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0, 40.0];
        let shuffled = [
            3.0,
            40.0,
            f32::NAN,
            1.0,
            7.0,
            -50.0,
            3.0,
            6.0,
            2.0,
            5.0,
            4.0,
        ];
        assert_eq!(box_stats(&sorted), box_stats(&shuffled));
        let s = box_stats(&sorted).unwrap();
        assert_eq!((s.lower_whisker, s.upper_whisker), (1.0, 7.0));
        let with_inf = [1.0, 2.0, 3.0, f32::INFINITY];
        assert_eq!(box_stats(&with_inf).unwrap().max, 3.0);
    }

    fn paths(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i}.png")).collect()
    }

    #[test]
    fn closest_match_skips_exact_duplicates() {
        // Rows 0, 1, 2 are copies (same content hash); 3 is close, 4 is far.
        let data = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 10.0, 0.0];
        let hashes = ["a", "a", "a", "b", "c"];
        let cfg = RankConfig {
            k: 2,
            normalise: false,
            score: ScoreKind::Nn,
            squared: false,
            profile: Profile::Photos,
            exact: false,
        };
        let r = rank(&paths(5), &hashes, &data, 2, &cfg);
        let by_index = |i: usize| r.images.iter().find(|x| x.index == i).unwrap();
        assert_eq!(by_index(0).closest, Some(3));
        assert_eq!(by_index(0).duplicates, 3);
        assert_eq!(by_index(0).nn_distance, Some(1.0));
        assert_eq!(by_index(4).nn_distance, Some(9.0));
        assert_eq!(r.images[0].index, 4, "the far point ranks first");
        let tutorial = rank(&paths(5), &hashes, &data, 2, &RankConfig::tutorial());
        assert_eq!(
            tutorial.images[0].nn_distance,
            Some(81.0),
            "squared L2 like FAISS"
        );
    }

    #[test]
    fn identical_features_are_duplicates_even_with_different_bytes() {
        let data = [1.0, 2.0, 1.0, 2.0, 5.0, 5.0];
        let groups = duplicate_groups(&["x", "y", "z"], &data, 2);
        assert_eq!(groups[0], groups[1]);
        assert_ne!(groups[0], groups[2]);
    }

    #[test]
    fn one_image_has_no_neighbour_and_two_see_each_other() {
        let r = rank(&paths(1), &["a"], &[1.0, 1.0], 2, &RankConfig::default());
        assert_eq!(r.images[0].score, None);
        assert_eq!(r.images[0].closest, None);
        let r = rank(
            &paths(2),
            &["a", "b"],
            &[1.0, 0.0, 0.0, 1.0],
            2,
            &RankConfig::default(),
        );
        assert!(r.images.iter().all(|i| i.closest.is_some()));
        assert!((r.images[0].nn_distance.unwrap() - 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn lof_flags_the_point_outside_a_cluster() {
        let mut data = Vec::new();
        for i in 0..10 {
            data.extend_from_slice(&[(i % 3) as f32 * 0.1, (i / 3) as f32 * 0.1]);
        }
        data.extend_from_slice(&[3.0, 3.0]);
        let hashes: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
        let cfg = RankConfig {
            k: 3,
            normalise: false,
            score: ScoreKind::Lof,
            squared: false,
            profile: Profile::Photos,
            exact: false,
        };
        let r = rank(&paths(11), &hashes, &data, 2, &cfg);
        assert_eq!(r.images[0].index, 10);
        assert!(r.images[0].lof.unwrap() > 5.0);
        assert!(r.images[0].beyond_fence);
    }
}
