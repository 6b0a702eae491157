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
use std::path::Path;

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
/// Squared L2 distances, nearest first, ties broken by the lower index.
pub fn knn(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
    let n = groups.len();
    assert_eq!(
        data.len(),
        n * dim,
        "data must hold one row of `dim` values per group id"
    );
    assert!(n < u32::MAX as usize, "row indices must fit below u32::MAX");
    if n < 2 || k == 0 {
        return Neighbours::missing(n, k);
    }
    let search = Search {
        data,
        dim,
        norms: squared_norms(data, dim, n),
        groups,
    };
    let width = k + MARGIN;
    let tiles = n.div_ceil(TILE);
    let pairs: Vec<(usize, usize)> = (0..tiles)
        .flat_map(|i| (i..tiles).map(move |j| (i, j)))
        .collect();
    let tile = |t: usize| t * TILE..((t + 1) * TILE).min(n);
    let table = pairs
        .par_iter()
        .fold(
            || Worker::new(n, width),
            |mut worker, &(ti, tj)| {
                worker.tile(&search, tile(ti), tile(tj));
                worker
            },
        )
        .map(|worker| worker.top)
        .reduce(|| TopK::new(n, width), TopK::merge);
    refine(data, dim, k, &table)
}

/// Recomputes the candidates' distances exactly, re-sorts each row and keeps its best k.
fn refine(data: &[f32], dim: usize, k: usize, table: &TopK) -> Neighbours {
    let n = table.index.len() / table.k;
    let mut out = Neighbours::missing(n, k);
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    out.index
        .par_chunks_mut(k)
        .zip(out.dist2.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (idx, dist))| {
            let mut found: Vec<(f32, u32)> = table.index[i * table.k..(i + 1) * table.k]
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

/// `knn`, remembered in `cache` (`store::knn`): the file holds the lists with a key of
/// everything they depend on (data, groups, k), so reopening an unchanged folder skips the
/// search. A missing, stale or damaged file is simply recomputed and rewritten.
pub fn knn_cached(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    cache: Option<&Path>,
) -> Neighbours {
    let Some(path) = cache else {
        return knn(data, dim, k, groups);
    };
    let key = knn_cache::key(data, dim, k, groups);
    if let Some((index, dist2)) = knn_cache::load(path, &key, groups.len(), k) {
        return Neighbours { k, index, dist2 };
    }
    let found = knn(data, dim, k, groups);
    // Best effort: a cache that cannot be written only costs the search next time.
    if let Err(e) = knn_cache::save(path, &key, &found.index, &found.dist2) {
        tracing::warn!("cannot write neighbour cache {}: {e}", path.display());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform values in [0, 1) from SplitMix64: deterministic data without a dependency.
    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..len).map(|_| rng.f32()).collect()
    }

    fn reference_distance(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum()
    }

    /// O(n^2 d) search in f64: (distance, row) lists, nearest first, ties by lower row.
    fn brute_force(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Vec<Vec<(f64, usize)>> {
        let row = |i: usize| &data[i * dim..(i + 1) * dim];
        (0..groups.len())
            .map(|i| {
                let mut all: Vec<(f64, usize)> = (0..groups.len())
                    .filter(|&j| groups[j] != groups[i])
                    .map(|j| (reference_distance(row(i), row(j)), j))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                all.truncate(k);
                all
            })
            .collect()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() <= 1e-12
    }

    /// Checks `knn` against the brute force: same counts, distances within 1e-4 relative,
    /// and the same rows except between distances equal within 1e-5 relative.
    fn check(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
        let got = knn(data, dim, k, groups);
        assert_eq!(got.index.len(), groups.len() * k);
        assert_eq!(got.dist2.len(), groups.len() * k);
        let want = brute_force(data, dim, k, groups);
        for (i, want) in want.iter().enumerate() {
            let row: Vec<(usize, f32)> = got.row(i).collect();
            assert_eq!(row.len(), want.len(), "row {i}: neighbour count");
            for (s, (&(j, d), &(wd, wj))) in row.iter().zip(want).enumerate() {
                assert!(close(f64::from(d), wd, 1e-4), "row {i}[{s}]: {d} vs {wd}");
                if j != wj {
                    let dj = reference_distance(
                        &data[i * dim..(i + 1) * dim],
                        &data[j * dim..(j + 1) * dim],
                    );
                    assert!(
                        close(dj, wd, 1e-5) && groups[j] != groups[i],
                        "row {i}[{s}]: row {j} ({dj}) instead of {wj} ({wd})"
                    );
                }
            }
            for s in row.len()..k {
                assert_eq!(got.index[i * k + s], u32::MAX);
                assert_eq!(got.dist2[i * k + s], f32::INFINITY);
            }
        }
        got
    }

    fn ungrouped(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    #[test]
    fn matches_brute_force_on_random_data() {
        for (n, dim, k) in [
            (0, 4, 3),
            (1, 4, 3),
            (2, 4, 3),
            (3, 4, 3),
            (2, 1, 1),
            (3, 1, 5),
            (200, 1, 3),
            (37, 7, 4),
            (1037, 7, 3),
            (600, 64, 3),
            (513, 64, 1),
            (45, 1280, 3),
        ] {
            let data = random(n * dim, (n * 1000 + dim) as u64);
            check(&data, dim, k, &ungrouped(n));
        }
    }

    #[test]
    fn more_neighbours_asked_than_rows() {
        let data = random(4 * 7, 9);
        let got = check(&data, 7, 6, &ungrouped(4));
        assert!((0..4).all(|i| got.row(i).count() == 3));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn exact_duplicates_are_at_distance_zero_unless_grouped() {
        // Rows 0, 300, 301 are copies (far from the origin, where cancellation is worst),
        // and 5, 302 too, across tiles.
        let dim = 64;
        let mut data: Vec<f32> = random(300 * dim, 4).iter().map(|v| v + 10.0).collect();
        let copy = |data: &mut Vec<f32>, i: usize| {
            let row = data[i * dim..(i + 1) * dim].to_vec();
            data.extend_from_slice(&row);
        };
        copy(&mut data, 0);
        copy(&mut data, 0);
        copy(&mut data, 5);
        let got = check(&data, dim, 3, &ungrouped(303));
        assert_eq!(
            got.row(0).take(2).collect::<Vec<_>>(),
            [(300, 0.0), (301, 0.0)]
        );
        assert_eq!(got.row(302).next(), Some((5, 0.0)));
        // Grouped, the copies never see each other: they share the nearest other row.
        let mut groups = ungrouped(303);
        groups[300..].copy_from_slice(&[0, 0, 5]);
        let grouped = check(&data, dim, 3, &groups);
        let nearest = brute_force(&data[..300 * dim], dim, 2, &ungrouped(300))[0][0].1;
        for i in [0, 300, 301] {
            let (j, d) = grouped.row(i).next().unwrap();
            assert_eq!(j, nearest);
            assert!(d > 0.0);
        }
        assert!(grouped.row(302).all(|(j, _)| j != 5));
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        // A 6 x 5 grid has many equal distances; then copies of rows 0 and 5, grouped.
        let mut data: Vec<f32> = (0..30)
            .flat_map(|i| [(i % 6) as f32, (i / 6) as f32])
            .collect();
        data.extend_from_slice(&[0.0, 0.0, 0.0, 0.0, 5.0, 0.0]);
        let mut groups = ungrouped(30);
        groups.extend_from_slice(&[0, 0, 5]);
        let got = check(&data, 2, 4, &groups);
        // Row 7 = (1, 1): four rows at distance 1, then the four diagonals at 2.
        assert_eq!(
            got.row(7).collect::<Vec<_>>(),
            [(1, 1.0), (6, 1.0), (8, 1.0), (13, 1.0)]
        );
        for i in [0, 30, 31] {
            assert_eq!(got.row(i).take(2).collect::<Vec<_>>(), [(1, 1.0), (6, 1.0)]);
        }
    }

    #[test]
    fn all_in_one_group_or_one_row_have_no_neighbours() {
        assert_eq!(knn(&[], 3, 2, &[]).len(), 0);
        assert!(knn(&[], 3, 2, &[]).is_empty());
        let one = knn(&[1.0, 2.0], 2, 3, &[0]);
        assert_eq!((one.row(0).count(), one.len()), (0, 1));
        let same = knn(&[1.0, 2.0, 1.0, 2.0], 2, 1, &[7, 7]);
        assert_eq!(same.row(0).count() + same.row(1).count(), 0);
        assert_eq!(same.len(), 2);
        assert_eq!(knn(&[1.0, 2.0], 1, 0, &[0, 1]).index.len(), 0);
    }

    #[test]
    fn zero_dimensions_are_all_at_distance_zero() {
        let got = knn(&[], 0, 2, &[0, 1, 1, 2]);
        assert_eq!(got.row(1).collect::<Vec<_>>(), [(0, 0.0), (3, 0.0)]);
    }

    #[test]
    fn lists_do_not_depend_on_the_thread_count() {
        let data = random(1100 * 16, 7);
        let groups: Vec<u32> = (0..1100).map(|i| i / 3).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single = pool.install(|| knn(&data, 16, 3, &groups));
        assert_eq!(single, knn(&data, 16, 3, &groups));
    }

    #[test]
    fn cached_lists_are_reused_and_stale_ones_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.knn");
        let data = random(50 * 8, 3);
        let groups = ungrouped(50);
        let fresh = knn_cached(&data, 8, 3, &groups, Some(&path));
        assert_eq!(fresh, knn(&data, 8, 3, &groups));
        assert_eq!(knn_cached(&data, 8, 3, &groups, Some(&path)), fresh);
        // Changed data: the key differs and the lists are recomputed.
        let mut moved = data.clone();
        moved[0] += 10.0;
        assert_eq!(
            knn_cached(&moved, 8, 3, &groups, Some(&path)),
            knn(&moved, 8, 3, &groups)
        );
        // A damaged file is ignored.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            knn_cached(&moved, 8, 3, &groups, Some(&path)),
            knn(&moved, 8, 3, &groups)
        );
    }
}
