//! Exact L2 k-nearest-neighbour search over all rows (what FAISS `IndexFlatL2` computes),
//! excluding each row's duplicate group.
//!
//! Squared distances come from blocked matrix products, `|a|^2 + |b|^2 - 2 a.b`, one
//! tile of rows against one tile of columns at a time, so no n x n matrix ever exists.
//! The distance is symmetric, so only tiles on or above the diagonal are computed and each
//! pair updates both rows' lists: half the arithmetic of a plain all-vs-all search. Each
//! worker keeps its own n x k table and the tables are merged at the end; memory is
//! O(n*d + workers*n*k) plus one tile per worker. Final distances are recomputed exactly as
//! sum((a - b)^2), so near-zero distances do not suffer from cancellation; near-ties may
//! still be ordered by the product's rounding, as in FAISS.

use crate::linalg::{Rhs, matmul};
use rayon::prelude::*;
use std::path::Path;

/// Rows per tile: 512 x 512 products keep the GEMM efficient and the tile (1 MB) in cache.
const TILE: usize = 512;

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
    /// The neighbours of row `i` as (row, squared distance), nearest first.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let slots = i * self.k..(i + 1) * self.k;
        self.index[slots.clone()]
            .iter()
            .zip(&self.dist2[slots])
            .filter(|(j, _)| **j != u32::MAX)
            .map(|(j, d)| (*j as usize, *d))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.index.len().checked_div(self.k).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Per-row sorted lists of the k best (distance, index) candidates seen so far.
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

    /// Offers candidate `j` at distance `d` to row `i`. Ties go to the lower index.
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

fn squared_norms(data: &[f32], dim: usize) -> Vec<f32> {
    data.chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

fn exact_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k nearest neighbours of every row of `data` (`n x dim`, row-major), never pairing rows
/// with the same `groups` id (a row is always in its own group).
pub fn knn(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
    let n = groups.len();
    assert_eq!(
        data.len(),
        n * dim,
        "data must hold one row of `dim` values per group id"
    );
    if n == 0 || k == 0 || dim == 0 {
        return Neighbours {
            k,
            index: vec![u32::MAX; n * k],
            dist2: vec![f32::INFINITY; n * k],
        };
    }
    let norms = squared_norms(data, dim);
    let tiles = n.div_ceil(TILE);
    let pairs: Vec<(usize, usize)> = (0..tiles)
        .flat_map(|i| (i..tiles).map(move |j| (i, j)))
        .collect();
    let table = pairs
        .par_iter()
        .fold(
            || (TopK::new(n, k), Vec::new()),
            |(mut top, mut product), &(ti, tj)| {
                let rows = ti * TILE..((ti + 1) * TILE).min(n);
                let cols = tj * TILE..((tj + 1) * TILE).min(n);
                product.resize(rows.len() * cols.len(), 0.0);
                matmul(
                    &mut product,
                    &data[rows.start * dim..rows.end * dim],
                    &data[cols.start * dim..cols.end * dim],
                    Rhs::Transposed,
                    rows.len(),
                    cols.len(),
                    dim,
                    false,
                    1,
                );
                for (r, dots) in rows.clone().zip(product.chunks_exact(cols.len())) {
                    // On a diagonal tile only pairs with c > r (each pair once).
                    let first = if ti == tj { r + 1 - cols.start } else { 0 };
                    for (c, dot) in cols.clone().zip(dots).skip(first) {
                        if groups[r] == groups[c] {
                            continue;
                        }
                        let d = (norms[r] + norms[c] - 2.0 * dot).max(0.0);
                        top.offer(r, c as u32, d);
                        top.offer(c, r as u32, d);
                    }
                }
                (top, product)
            },
        )
        .map(|(top, _)| top)
        .reduce(|| TopK::new(n, k), TopK::merge);
    refine(data, dim, table)
}

/// `knn`, remembered in `cache`: the file holds the lists with a key of everything they
/// depend on (data, groups, k), so reopening an unchanged folder skips the search. A
/// missing, stale or damaged file is simply recomputed and rewritten.
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
    let key = cache_key(data, dim, k, groups);
    if let Some(found) = std::fs::read(path)
        .ok()
        .and_then(|bytes| decode(&bytes, &key, groups.len(), k))
    {
        return found;
    }
    let found = knn(data, dim, k, groups);
    // Best effort: a cache that cannot be written only costs the search next time.
    if let Err(e) = crate::store::write_atomic(path, &encode(&found, &key)) {
        tracing::warn!("cannot write neighbour cache {}: {e}", path.display());
    }
    found
}

const MAGIC: &[u8; 8] = b"SNOWKNN1";

fn cache_key(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(dim as u64).to_le_bytes());
    hasher.update(&(k as u64).to_le_bytes());
    groups.iter().for_each(|g| {
        hasher.update(&g.to_le_bytes());
    });
    data.iter().for_each(|v| {
        hasher.update(&v.to_le_bytes());
    });
    *hasher.finalize().as_bytes()
}

/// magic, key, then the index and distance arrays, then BLAKE3 of everything before it.
fn encode(nn: &Neighbours, key: &[u8; 32]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(key);
    bytes.extend(nn.index.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(nn.dist2.iter().flat_map(|v| v.to_le_bytes()));
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

fn decode(bytes: &[u8], key: &[u8; 32], n: usize, k: usize) -> Option<Neighbours> {
    let body_len = 8 + 32 + n * k * 8;
    if bytes.len() != body_len + 32 || &bytes[..8] != MAGIC || &bytes[8..40] != key {
        return None;
    }
    if blake3::hash(&bytes[..body_len]).as_bytes() != &bytes[body_len..] {
        return None;
    }
    let words = |range: std::ops::Range<usize>| {
        bytes[range]
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
    };
    let index = words(40..40 + n * k * 4).map(u32::from_le_bytes).collect();
    let dist2 = words(40 + n * k * 4..body_len)
        .map(f32::from_le_bytes)
        .collect();
    Some(Neighbours { k, index, dist2 })
}

/// Replaces the product-based distances with exact ones and re-sorts each row.
fn refine(data: &[f32], dim: usize, table: TopK) -> Neighbours {
    let k = table.k;
    let mut index = table.index;
    let mut dist2 = table.dist;
    index
        .par_chunks_mut(k)
        .zip(dist2.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (idx, dist))| {
            let row = &data[i * dim..(i + 1) * dim];
            let mut found: Vec<(f32, u32)> = idx
                .iter()
                .filter(|&&j| j != u32::MAX)
                .map(|&j| {
                    (
                        exact_distance(row, &data[j as usize * dim..(j as usize + 1) * dim]),
                        j,
                    )
                })
                .collect();
            found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (d, j)) in found.into_iter().enumerate() {
                dist[s] = d;
                idx[s] = j;
            }
        });
    Neighbours { k, index, dist2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..n).map(|_| rng.f32()).collect()
    }

    fn brute_force(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Vec<Vec<(f32, usize)>> {
        let n = groups.len();
        (0..n)
            .map(|i| {
                let mut all: Vec<(f32, usize)> = (0..n)
                    .filter(|&j| groups[j] != groups[i])
                    .map(|j| {
                        (
                            exact_distance(
                                &data[i * dim..(i + 1) * dim],
                                &data[j * dim..(j + 1) * dim],
                            ),
                            j,
                        )
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                all.truncate(k);
                all
            })
            .collect()
    }

    fn check(data: &[f32], dim: usize, k: usize, groups: &[u32]) {
        let got = knn(data, dim, k, groups);
        let want = brute_force(data, dim, k, groups);
        for (i, want) in want.iter().enumerate() {
            let row: Vec<(usize, f32)> = got.row(i).collect();
            assert_eq!(row.len(), want.len(), "row {i}: neighbour count");
            for (&(j, d), &(wd, wj)) in row.iter().zip(want) {
                let tolerance = 1e-4 * wd.max(1e-3);
                assert!((d - wd).abs() <= tolerance, "row {i}: distance {d} vs {wd}");
                // Indices may differ only between (numerically) equal distances.
                if j != wj {
                    let dj = exact_distance(
                        &data[i * dim..(i + 1) * dim],
                        &data[j * dim..(j + 1) * dim],
                    );
                    assert!(
                        (dj - wd).abs() <= tolerance,
                        "row {i}: neighbour {j} instead of {wj}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_brute_force_on_random_data() {
        for (n, dim, k) in [
            (0, 4, 3),
            (1, 4, 3),
            (2, 4, 3),
            (3, 1, 5),
            (37, 7, 4),
            (600, 64, 3),
            (1100, 33, 5),
        ] {
            let data = random(n * dim, n as u64 + dim as u64);
            let groups: Vec<u32> = (0..n as u32).collect();
            check(&data, dim, k, &groups);
        }
        let data = random(5 * 1280, 5);
        check(&data, 1280, 3, &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn duplicates_ties_and_groups() {
        // A grid has many equal distances; copies of rows 0 and 5 form groups.
        let mut data: Vec<f32> = (0..30)
            .flat_map(|i| [(i % 6) as f32, (i / 6) as f32])
            .collect();
        data.extend_from_slice(&[0.0, 0.0, 0.0, 0.0, 5.0, 0.0]);
        let mut groups: Vec<u32> = (0..30).collect();
        groups.extend_from_slice(&[0, 0, 5]);
        check(&data, 2, 4, &groups);
        let got = knn(&data, 2, 1, &groups);
        // Row 0 and its copies (30, 31) never pick each other.
        for i in [0, 30, 31] {
            let (j, d) = got.row(i).next().unwrap();
            assert!(![0, 30, 31].contains(&j));
            assert_eq!(d, 1.0);
        }
        // Without grouping, a copy is at distance exactly 0.
        let ungrouped: Vec<u32> = (0..33).collect();
        assert_eq!(knn(&data, 2, 1, &ungrouped).row(30).next().unwrap().1, 0.0);
    }

    #[test]
    fn cached_lists_are_reused_and_stale_ones_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.knn");
        let data = random(50 * 8, 3);
        let groups: Vec<u32> = (0..50).collect();
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

    #[test]
    fn single_row_and_all_one_group_have_no_neighbours() {
        let one = knn(&[1.0, 2.0], 2, 3, &[0]);
        assert_eq!(one.row(0).count(), 0);
        let same = knn(&[1.0, 2.0, 1.0, 2.0], 2, 1, &[7, 7]);
        assert_eq!(same.row(0).count() + same.row(1).count(), 0);
        assert_eq!(same.len(), 2);
    }
}
