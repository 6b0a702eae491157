//! Exact L2 k-nearest-neighbour search over all rows (what FAISS `IndexFlatL2` computes),
//! excluding each row's duplicate group.
//!
//! Squared distances come from blocked matrix products, `|a|^2 + |b|^2 - 2 a.b`, one tile
//! of rows against one tile of columns at a time, so no n x n matrix ever exists. The
//! distance is symmetric, so only tiles on or above the diagonal are computed and each
//! pair updates both rows' lists: half the arithmetic of a plain all-vs-all search. Each
//! worker keeps its own n x k candidate table and the tables are merged at the end; memory
//! is O(n*d + workers*n*k) plus one tile per worker.
//!
//! The product form loses precision to cancellation when two rows are close compared to
//! their norms, so the search keeps a few more candidates than asked for and their
//! distances are then recomputed exactly as sum((a - b)^2) and re-sorted: exact duplicates
//! come out at exactly 0 and the order near the k-th neighbour is decided by the exact
//! values. A candidate whose product-form rank was off by more than that margin can still
//! be missed, as in FAISS; ties are broken by the lower index.

use crate::linalg::{Rhs, matmul};
use crate::store::knn as knn_cache;
use rayon::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};

mod blocks;
mod ivf;

pub use blocks::{BlockError, write as search_block};

/// Rows per tile: 512 x 512 products keep the GEMM efficient while the tile (1 MB) stays in
/// cache, and the wasted lower half of the diagonal tiles stays small (512/n of the work).
const TILE: usize = 512;

/// Extra candidates per row during the search, so that the exact recomputation rather than
/// the rounding of the product decides the order around the k-th neighbour.
const MARGIN: usize = 2;

/// Columns tested together before looking at any one: after the first few tiles almost no
/// pair enters a list, and a branch-free test over a chunk vectorises.
const CHUNK: usize = 16;

/// The k nearest neighbours of every row, nearest first (row-major `n * k`).
/// Missing slots (fewer than k other-group rows): index `u32::MAX`, distance infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub index: Vec<u32>,
    /// Squared L2 distances.
    pub dist2: Vec<f32>,
}

impl Neighbours {
    /// All slots missing: what rows without any other-group row get.
    fn missing(n: usize, k: usize) -> Self {
        Self {
            k,
            index: vec![u32::MAX; n * k],
            dist2: vec![f32::INFINITY; n * k],
        }
    }

    /// The neighbours of row `i` as (row, squared distance), nearest first.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let slots = i * self.k..(i + 1) * self.k;
        self.index[slots.clone()]
            .iter()
            .zip(&self.dist2[slots])
            .filter(|(j, _)| **j != u32::MAX)
            .map(|(j, d)| (*j as usize, *d))
    }

    /// Number of rows (0 when `k` is 0: the lists then hold nothing to count).
    pub fn len(&self) -> usize {
        self.index.len().checked_div(self.k).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Per-row sorted lists of the best (distance, index) candidates seen so far.
struct TopK {
    k: usize,
    dist: Vec<f32>,
    index: Vec<u32>,
}

impl TopK {
    fn new(n: usize, k: usize) -> Self {
        Self {
            k,
            dist: vec![f32::INFINITY; n * k],
            index: vec![u32::MAX; n * k],
        }
    }

    /// The distance a candidate must not exceed to enter row `i`'s list.
    #[inline]
    fn worst(&self, i: usize) -> f32 {
        self.dist[i * self.k + self.k - 1]
    }

    /// Offers candidate `j` at distance `d` to row `i` (insertion into the sorted list).
    /// The order is total, (distance, index), so the lists do not depend on the order in
    /// which candidates arrive, hence not on the scheduling of the workers.
    #[inline]
    fn offer(&mut self, i: usize, j: u32, d: f32) {
        let base = i * self.k;
        let last = base + self.k - 1;
        let worse = |a: (f32, u32), b: (f32, u32)| a.0 > b.0 || (a.0 == b.0 && a.1 > b.1);
        if !worse((self.dist[last], self.index[last]), (d, j)) {
            return;
        }
        let mut slot = last;
        while slot > base && worse((self.dist[slot - 1], self.index[slot - 1]), (d, j)) {
            self.dist[slot] = self.dist[slot - 1];
            self.index[slot] = self.index[slot - 1];
            slot -= 1;
        }
        self.dist[slot] = d;
        self.index[slot] = j;
    }

    fn merge(mut self, other: Self) -> Self {
        let n = self.dist.len() / self.k;
        for i in 0..n {
            for s in i * self.k..(i + 1) * self.k {
                if other.index[s] != u32::MAX {
                    self.offer(i, other.index[s], other.dist[s]);
                }
            }
        }
        self
    }
}

/// What every tile reads.
struct Search<'a> {
    data: &'a [f32],
    dim: usize,
    norms: Vec<f32>,
    groups: &'a [u32],
}

/// One worker's candidate table and scratch space.
struct Worker {
    top: TopK,
    /// The tile's dot products, turned into distances in place.
    product: Vec<f32>,
    /// The current admission threshold of each column of the tile.
    col_worst: Vec<f32>,
}

impl Worker {
    fn new(n: usize, k: usize) -> Self {
        Self {
            top: TopK::new(n, k),
            product: Vec::new(),
            col_worst: Vec::new(),
        }
    }

    /// Offers every pair (r, c) with r in `rows`, c in `cols` (c > r on a diagonal tile)
    /// to both r's and c's lists.
    fn tile(&mut self, s: &Search, rows: Range<usize>, cols: Range<usize>) {
        let (m, w, dim) = (rows.len(), cols.len(), s.dim);
        self.product.resize(m * w, 0.0);
        if dim == 0 {
            self.product.fill(0.0);
        } else {
            let lhs = &s.data[rows.start * dim..rows.end * dim];
            let rhs = &s.data[cols.start * dim..cols.end * dim];
            matmul(
                &mut self.product,
                lhs,
                rhs,
                Rhs::Transposed,
                m,
                w,
                dim,
                false,
                1,
            );
        }
        self.col_worst.clear();
        self.col_worst
            .extend(cols.clone().map(|c| self.top.worst(c)));
        let diagonal = rows == cols;
        for (r, dots) in rows.zip(self.product.chunks_exact_mut(w)) {
            to_distances(dots, s.norms[r], &s.norms[cols.clone()]);
            // On a diagonal tile only pairs with c > r, so that each pair is seen once.
            let first = if diagonal { r + 1 - cols.start } else { 0 };
            scan_row(
                &mut self.top,
                &mut self.col_worst[first..],
                r,
                cols.start + first,
                &dots[first..],
                s.groups,
            );
        }
    }
}

/// `dots[c] = |r|^2 + |c|^2 - 2 r.c`, clamped at 0 (cancellation can go below).
fn to_distances(dots: &mut [f32], row_norm: f32, col_norms: &[f32]) {
    for (p, &nc) in dots.iter_mut().zip(col_norms) {
        *p = (row_norm + nc - 2.0 * *p).max(0.0);
    }
}

/// Offers row `r`'s distances to columns `start..` to both lists, testing whole chunks
/// against the thresholds first.
fn scan_row(
    top: &mut TopK,
    col_worst: &mut [f32],
    r: usize,
    start: usize,
    dists: &[f32],
    groups: &[u32],
) {
    let mut row_worst = top.worst(r);
    for (chunk, (ds, ws)) in dists
        .chunks(CHUNK)
        .zip(col_worst.chunks_mut(CHUNK))
        .enumerate()
    {
        if !any_admitted(ds, ws, row_worst) {
            continue;
        }
        for (o, (&d, w)) in ds.iter().zip(ws).enumerate() {
            let c = start + chunk * CHUNK + o;
            if groups[c] == groups[r] {
                continue;
            }
            if d <= row_worst {
                top.offer(r, c as u32, d);
                row_worst = top.worst(r);
            }
            if d <= *w {
                top.offer(c, r as u32, d);
                *w = top.worst(c);
            }
        }
    }
}

/// Whether any distance may enter the row's list or its column's (no early exit, so that
/// it compiles to a few vector compares).
#[inline]
fn any_admitted(dists: &[f32], col_worst: &[f32], row_worst: f32) -> bool {
    dists
        .iter()
        .zip(col_worst)
        .fold(false, |hit, (&d, &w)| hit | (d <= row_worst) | (d <= w))
}

/// Squared norm of each of the `n` rows (indexing by row, not `chunks_exact(dim)`, so that
/// `dim = 0` works).
fn squared_norms(data: &[f32], dim: usize, n: usize) -> Vec<f32> {
    (0..n)
        .into_par_iter()
        .map(|i| data[i * dim..(i + 1) * dim].iter().map(|v| v * v).sum())
        .collect()
}

/// sum((a - b)^2) in f64 over 8 independent lanes (vectorised, and accurate to f32 output
/// precision whatever the dimension).
fn exact_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f64; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            let d = f64::from(x[l]) - f64::from(y[l]);
            lanes[l] += d * d;
        }
    }
    (lanes.iter().sum::<f64>() + tail) as f32
}

/// k nearest neighbours of every row of `data` (`n x dim`, row-major, finite values),
/// never pairing rows with the same `groups` id (a row is always in its own group).
/// Rows sharing an id are meant to be exact duplicates; use `0..n` for "no duplicates".
/// Squared L2 distances, nearest first, ties broken by the lower index. Always the exact
/// search, whatever the size; [`search`] chooses.
pub fn knn(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
    check_input(data, dim, groups);
    exact(data, dim, k, groups, squared_norms(data, dim, groups.len()))
}

fn check_input(data: &[f32], dim: usize, groups: &[u32]) {
    assert_eq!(
        data.len(),
        groups.len() * dim,
        "data must hold one row of `dim` values per group id"
    );
    assert!(
        groups.len() < u32::MAX as usize,
        "row indices must fit below u32::MAX"
    );
}

fn exact(data: &[f32], dim: usize, k: usize, groups: &[u32], norms: Vec<f32>) -> Neighbours {
    let n = groups.len();
    if n < 2 || k == 0 {
        return Neighbours::missing(n, k);
    }
    let search = Search {
        data,
        dim,
        norms,
        groups,
    };
    let table = exact_table(&search, n, k + MARGIN, &tile_pairs(n));
    refine(data, dim, k, &table, |i| i)
}

/// The pairs of tiles (row tile, column tile) on or above the diagonal of `n` rows, in a
/// fixed order: all the exact search compares.
fn tile_pairs(n: usize) -> Vec<(usize, usize)> {
    let tiles = n.div_ceil(TILE);
    (0..tiles)
        .flat_map(|i| (i..tiles).map(move |j| (i, j)))
        .collect()
}

/// The candidate table (`width` per row) of the `n` rows from the tile pairs `pairs`.
fn exact_table(search: &Search, n: usize, width: usize, pairs: &[(usize, usize)]) -> TopK {
    let tile = |t: usize| t * TILE..((t + 1) * TILE).min(n);
    pairs
        .par_iter()
        .fold(
            || Worker::new(n, width),
            |mut worker, &(ti, tj)| {
                worker.tile(search, tile(ti), tile(tj));
                worker
            },
        )
        .map(|worker| worker.top)
        .reduce(|| TopK::new(n, width), TopK::merge)
}

/// Recomputes the candidates' distances exactly, re-sorts each list and keeps its best k.
/// List `s` of `table` belongs to row `row_of(s)` of `data`.
fn refine(
    data: &[f32],
    dim: usize,
    k: usize,
    table: &TopK,
    row_of: impl Fn(usize) -> usize + Sync,
) -> Neighbours {
    let n = table.index.len() / table.k;
    let mut out = Neighbours::missing(n, k);
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    out.index
        .par_chunks_mut(k)
        .zip(out.dist2.par_chunks_mut(k))
        .enumerate()
        .for_each(|(s, (idx, dist))| {
            let i = row_of(s);
            let mut found: Vec<(f32, u32)> = table.index[s * table.k..(s + 1) * table.k]
                .iter()
                .filter(|&&j| j != u32::MAX)
                .map(|&j| (exact_distance(row(i), row(j as usize)), j))
                .collect();
            found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for ((slot_j, slot_d), (d, j)) in idx.iter_mut().zip(dist.iter_mut()).zip(found) {
                *slot_d = d;
                *slot_j = j;
            }
        });
    out
}

/// Which search finds the neighbours.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// The exact search at any size (`rank --exact`).
    pub exact: bool,
    /// The exact search's lists merged from these row blocks (`rank --neighbours`, the
    /// files of `rank --rows I/N`) instead of any search.
    pub blocks: Vec<PathBuf>,
    /// Fewest rows searched with the index: below, the exact search is fast enough
    /// (13.7 s at 50,000 x 1280 on 2 cores) and its answer is the reference.
    pub index_from: usize,
    /// Share of sampled rows whose closest match must equal the exact search's.
    pub recall: f64,
    /// Rows searched exactly to set the index's probes, and as many again to measure it.
    pub sample: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            exact: false,
            blocks: Vec::new(),
            index_from: 50_000,
            recall: 0.99,
            sample: 1000,
        }
    }
}

impl SearchOptions {
    /// Whether `n` rows of `dim` values get the exact search.
    fn exact_for(&self, n: usize, dim: usize) -> Option<String> {
        if self.exact {
            Some("asked for (--exact)".into())
        } else if n < self.index_from || dim == 0 {
            Some(format!("below {} rows", self.index_from))
        } else {
            None
        }
    }

    /// Everything besides the data the lists of `n` rows depend on (for the cache key):
    /// the same for every exact search, so that the cases share their lists.
    fn tag(&self, n: usize, dim: usize) -> String {
        match self.exact_for(n, dim) {
            Some(_) => "exact".into(),
            None => format!(
                "ivf1 recall {} sample {} lists {}",
                self.recall,
                self.sample,
                ivf::lists_for(n)
            ),
        }
    }
}

/// How the neighbours were found: `rank --verbose` prints it and the JSON `config` holds
/// it as `search`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum SearchReport {
    /// Every pair compared.
    Exact { why: String },
    /// The inverted-file index: each row searched the `probes` lists nearest to it, and
    /// the `exact_rows` rows farthest from their neighbours were then searched exactly:
    /// every image whose closest-match distance or k-NN mean is `exact_from` or more has
    /// its exact neighbours. `pairs` distances in all; `recall_sampled` is the share of
    /// `sample` held-out rows whose closest match equals the exact search's (the probes
    /// were set on `calibration_sample` other rows).
    Ivf {
        lists: usize,
        probes: usize,
        pairs: usize,
        exact_rows: usize,
        exact_from: f64,
        recall_sampled: f64,
        sample: usize,
        calibration_sample: usize,
    },
}

impl std::fmt::Display for SearchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Self::Exact { why } => write!(f, "exact ({why})"),
            Self::Ivf {
                lists,
                probes,
                pairs,
                exact_rows,
                exact_from,
                recall_sampled,
                sample,
                calibration_sample,
            } => write!(
                f,
                "inverted file, {probes} of {lists} lists probed per image, then the \
                 {exact_rows} images farthest from their neighbours searched exactly (every \
                 image scoring {exact_from:.4} or more is exact); {pairs} distances; closest \
                 match equal to the exact search's for {:.1} % of {sample} sampled images \
                 (the probes were set on {calibration_sample} others)",
                100.0 * recall_sampled
            ),
        }
    }
}

/// The k nearest neighbours of every row (as [`knn`]), by the exact search or, for large
/// n, by the inverted-file index with its recall measured against the exact search.
pub fn search(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    opts: &SearchOptions,
) -> (Neighbours, SearchReport) {
    check_input(data, dim, groups);
    let norms = squared_norms(data, dim, groups.len());
    let why = match opts.exact_for(groups.len(), dim) {
        Some(why) => why,
        None if k == 0 => "no neighbours asked for".into(),
        None => match ivf::search(data, dim, k, groups, &norms, opts) {
            Some(found) => return found,
            None => format!(
                "the index would compare half the pairs to reach {} recall",
                opts.recall
            ),
        },
    };
    (
        exact(data, dim, k, groups, norms),
        SearchReport::Exact { why },
    )
}

/// `search`, remembered in `cache` (`store::knn`): the file holds the lists and the report
/// with a key of everything they depend on (data, groups, k, the search's settings), so
/// reopening an unchanged folder skips the search. A missing, stale or damaged file is
/// simply recomputed and rewritten. With row blocks (`opts.blocks`) the lists are merged
/// from them, never read from the cache: blocks that do not make up this search are an
/// error, not something a cached answer hides.
pub fn search_cached(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    cache: Option<ListCache>,
    opts: &SearchOptions,
) -> Result<(Neighbours, SearchReport), BlockError> {
    let merging = !opts.blocks.is_empty();
    // Merged blocks are the exact search's lists, and are cached as such.
    let tag = if merging {
        "exact".into()
    } else {
        opts.tag(groups.len(), dim)
    };
    let key = cache.map(|c| match c.rows {
        Some(rows) => knn_cache::key_of_rows(&rows, dim, k, &tag),
        None => knn_cache::key(data, dim, k, groups, &tag),
    });
    if let (Some(cache), Some(key), false) = (cache, &key, merging)
        && let Some((found, _, report)) = lists_in(cache.path, key, groups.len(), k)
    {
        return Ok((found, report));
    }
    let (found, report) = if merging {
        let found = blocks::merge(data, dim, k, groups, &opts.blocks)?;
        let why = format!("merged from {} row blocks (--rows)", opts.blocks.len());
        (found, SearchReport::Exact { why })
    } else {
        search(data, dim, k, groups, opts)
    };
    if let (Some(cache), Some(key)) = (cache, &key) {
        let lists = knn_cache::Lists {
            index: found.index,
            dist2: found.dist2,
            groups: groups.to_vec(),
            report: serde_json::to_string(&report).expect("plain data serialises"),
        };
        // Best effort: a cache that cannot be written only costs the search next time.
        if let Err(e) = knn_cache::save(cache.path, key, &lists) {
            tracing::warn!("cannot write neighbour cache {}: {e}", cache.path.display());
        }
        let found = Neighbours {
            k,
            index: lists.index,
            dist2: lists.dist2,
        };
        return Ok((found, report));
    }
    Ok((found, report))
}

/// Where the lists of a search are remembered, and what stands for its rows.
#[derive(Debug, Clone, Copy)]
pub struct ListCache<'a> {
    pub path: &'a Path,
    /// A key that stands for the searched rows' values and duplicate groups (made from the
    /// feature cache's checksums, which of its rows, and the embedding's settings), so that
    /// a warm start finds the lists without reading the rows ([`cached_lists`]); `None`:
    /// the key is a hash of the values.
    pub rows: Option<[u8; 32]>,
}

/// The lists `search_cached` would give for the `n` rows, `dim` wide, that `cache.rows`
/// stands for, if it remembers them, with the rows' duplicate groups; found without the
/// rows. `None` when not cached (or when `opts` merges row blocks, which are never read
/// from the cache).
pub fn cached_lists(
    cache: ListCache,
    n: usize,
    dim: usize,
    k: usize,
    opts: &SearchOptions,
) -> Option<(Neighbours, Vec<u32>, SearchReport)> {
    let rows = cache.rows.filter(|_| opts.blocks.is_empty())?;
    let key = knn_cache::key_of_rows(&rows, dim, k, &opts.tag(n, dim));
    lists_in(cache.path, &key, n, k)
}

fn lists_in(
    path: &Path,
    key: &[u8; 32],
    n: usize,
    k: usize,
) -> Option<(Neighbours, Vec<u32>, SearchReport)> {
    let lists = knn_cache::load(path, key, n, k)?;
    let report = serde_json::from_str(&lists.report).ok()?;
    let found = Neighbours {
        k,
        index: lists.index,
        dist2: lists.dist2,
    };
    Some((found, lists.groups, report))
}

/// The exact search, remembered in `cache` (`search_cached` with `--exact`'s options).
pub fn knn_cached(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    cache: Option<&Path>,
) -> Neighbours {
    let exact = SearchOptions {
        exact: true,
        ..SearchOptions::default()
    };
    let cache = cache.map(|path| ListCache { path, rows: None });
    search_cached(data, dim, k, groups, cache, &exact)
        .expect("without row blocks no file is read that could fail")
        .0
}

#[cfg(test)]
mod tests;
