//! An inverted-file (IVF) index for large n: the rows are partitioned into lists by k-means
//! centroids, each row searches only the lists of its `probes` nearest centroids, and the
//! candidates are re-ranked exactly like the exact search's (k + `MARGIN`, f64 refinement,
//! duplicate groups excluded).
//!
//! How many lists a row must probe depends on the data, so it is measured, not guessed:
//! a deterministic sample of rows is searched exactly first. On one half (calibration) the
//! probes are set to the fewest that would find each row's exact closest match for a
//! little more than the target share; the other half (held out) then measures what the
//! index really found. Below the target the search probes more lists (only the new ones
//! are searched), and where that would cost as much as the exact search it gives up so
//! that the caller runs the exact search instead.
//!
//! Everything is deterministic: fixed seeds, fixed blocks, one thread per matrix product,
//! and candidate tables merged in a total order, so the lists do not depend on the thread
//! count. The data is never copied whole: rows are gathered a block at a time.

use super::{MARGIN, Neighbours, SearchOptions, SearchReport, TILE, TopK, refine, to_distances};
use crate::linalg::{Rhs, matmul};
use crate::rng::Rng;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Seed of the k-means sample and of the recall samples.
const SEED: u64 = 0x1F5E_A5C4_0018;

/// Lists per square root of n: the assignment costs n x lists products and the search
/// about n x probes x n / lists, so the total is least near sqrt(n x probes); the probes
/// found on clustered embeddings (a few to a few dozen) put that near 2-6 sqrt(n).
const LISTS_PER_SQRT_N: f64 = 8.0;

/// k-means trains on this many sampled rows per list (FAISS warns below 39; Lloyd's
/// centroids settle well before that matters for the probes, and training is a GEMM over
/// the sample per iteration).
const TRAIN_PER_LIST: usize = 16;

/// Lloyd iterations: the centroids only steer the probes, the recall is measured anyway.
const ITERATIONS: usize = 5;

/// Queries gathered per matrix product against one list (a 5 MB block at 1280-d).
const QUERY_BLOCK: usize = 1024;

/// Rows of a gathered block, in the order of a list or a sample.
type Rows<'a> = &'a [u32];

/// The data the index searches.
struct Data<'a> {
    data: &'a [f32],
    dim: usize,
    norms: &'a [f32],
    groups: &'a [u32],
}

impl Data<'_> {
    fn n(&self) -> usize {
        self.groups.len()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Copies `rows` into `buf`, one after another.
    fn gather(&self, rows: Rows, buf: &mut Vec<f32>) {
        buf.clear();
        for &r in rows {
            buf.extend_from_slice(self.row(r as usize));
        }
    }
}

/// The k-means centroids.
struct Centroids {
    lists: usize,
    means: Vec<f32>,
    /// Half the squared norm of each mean.
    half_norms: Vec<f32>,
}

impl Centroids {
    fn new(means: Vec<f32>, dim: usize) -> Self {
        let lists = means.len() / dim;
        let half_norms = super::squared_norms(&means, dim, lists)
            .into_iter()
            .map(|v| v / 2.0)
            .collect();
        Self {
            lists,
            means,
            half_norms,
        }
    }

    /// `|c|^2 / 2 - x.c` for every row x of `block` (`m` rows) and centroid c: half the
    /// squared distance less `|x|^2 / 2`, which orders the centroids of one row all the same.
    fn scores(&self, block: &[f32], m: usize, dim: usize, out: &mut Vec<f32>) {
        out.resize(m * self.lists, 0.0);
        matmul(
            out,
            block,
            &self.means,
            Rhs::Transposed,
            m,
            self.lists,
            dim,
            false,
            1,
        );
        for row in out.chunks_exact_mut(self.lists) {
            for (s, &b) in row.iter_mut().zip(&self.half_norms) {
                *s = b - *s;
            }
        }
    }

    /// For each row of `rows` (all rows when `None`), the centroids at places `ranks` of
    /// its order by distance (ties by the lower centroid), row-major.
    fn ranked(&self, d: &Data, rows: Option<Rows>, ranks: Range<usize>) -> Vec<u32> {
        let m = rows.map_or(d.n(), <[u32]>::len);
        let width = ranks.len();
        let mut out = vec![0u32; m * width];
        out.par_chunks_mut(TILE * width.max(1))
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(gathered, scores, best), (b, out)| {
                    let span = b * TILE..(b * TILE + TILE).min(m);
                    let block: &[f32] = match rows {
                        Some(rows) => {
                            d.gather(&rows[span.clone()], gathered);
                            gathered
                        }
                        None => &d.data[span.start * d.dim..span.end * d.dim],
                    };
                    self.scores(block, span.len(), d.dim, scores);
                    for (row, out) in scores
                        .chunks_exact(self.lists)
                        .zip(out.chunks_exact_mut(width.max(1)))
                    {
                        smallest(row, ranks.end, best);
                        for (o, &(_, c)) in out.iter_mut().zip(&best[ranks.start..]) {
                            *o = c;
                        }
                    }
                },
            );
        out
    }
}

/// The `count` smallest (score, index) of `scores` into `best`, ascending.
fn smallest(scores: &[f32], count: usize, best: &mut Vec<(f32, u32)>) {
    best.clear();
    let below = |a: (f32, u32), b: (f32, u32)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
    for (c, &s) in scores.iter().enumerate() {
        let item = (s, c as u32);
        if best.len() == count {
            if !below(item, best[count - 1]) {
                continue;
            }
            best.pop();
        }
        let at = best.partition_point(|&b| below(b, item));
        best.insert(at, item);
    }
}

/// `count` distinct rows of `0..n`, drawn by a partial Fisher-Yates shuffle.
fn sample(rng: &mut Rng, n: usize, count: usize) -> Vec<u32> {
    let mut all: Vec<u32> = (0..n as u32).collect();
    for i in 0..count.min(n) {
        let j = i + rng.below(n - i);
        all.swap(i, j);
    }
    all.truncate(count.min(n));
    all
}

/// k-means on a sample of the rows, started from `lists` sampled rows; then every list
/// that drew over `SPLIT` times its share of the sample is split by k-means on its own
/// rows. Without that, embeddings that share a common direction leave a "hub" list near
/// the data's centre (the rows of clusters that got no centroid of their own): it is the
/// second-nearest list of almost every row, so every row would search it.
fn train(d: &Data, lists: usize) -> Centroids {
    let mut rng = Rng::derive(SEED, 0);
    let rows = sample(&mut rng, d.n(), (lists * TRAIN_PER_LIST).max(lists));
    let mut seeds = Vec::new();
    d.gather(&rows[..lists], &mut seeds);
    let (centroids, nearest) = lloyd(d, &rows, Centroids::new(seeds, d.dim));
    let members = invert(&nearest, 1, lists);
    let share = rows.len().div_ceil(lists);
    let mut values = centroids.means;
    for l in 0..lists {
        let of = members.list(l);
        if of.len() <= SPLIT * share {
            continue;
        }
        // The list's rows are in the sample's (random) order: its first ones seed the pieces.
        let own: Vec<u32> = of.iter().map(|&m| rows[m as usize]).collect();
        let mut seeds = Vec::new();
        d.gather(&own[..own.len().div_ceil(share)], &mut seeds);
        let (pieces, _) = lloyd(d, &own, Centroids::new(seeds, d.dim));
        values[l * d.dim..(l + 1) * d.dim].copy_from_slice(&pieces.means[..d.dim]);
        values.extend_from_slice(&pieces.means[d.dim..]);
    }
    Centroids::new(values, d.dim)
}

/// Lloyd's iterations over `rows` from `centroids`: the centroids, and each row's list.
fn lloyd(d: &Data, rows: Rows, mut centroids: Centroids) -> (Centroids, Vec<u32>) {
    for _ in 0..ITERATIONS {
        let nearest = centroids.ranked(d, Some(rows), 0..1);
        let members = invert(&nearest, 1, centroids.lists);
        let mut values = centroids.means;
        values
            .par_chunks_mut(d.dim)
            .enumerate()
            .for_each(|(c, centre)| {
                let of = members.list(c);
                // An empty list keeps its centroid: it costs nothing to probe.
                if of.is_empty() {
                    return;
                }
                let mut sum = vec![0.0f64; d.dim];
                for &m in of {
                    let row = d.row(rows[m as usize] as usize);
                    sum.iter_mut()
                        .zip(row)
                        .for_each(|(s, &v)| *s += f64::from(v));
                }
                let count = of.len() as f64;
                centre
                    .iter_mut()
                    .zip(&sum)
                    .for_each(|(c, s)| *c = (s / count) as f32);
            });
        centroids = Centroids::new(values, d.dim);
    }
    let nearest = centroids.ranked(d, Some(rows), 0..1);
    (centroids, nearest)
}

/// A list is split when it holds more than this many times its share of the rows.
const SPLIT: usize = 4;

/// Rows grouped by list (compressed: list `l` holds `rows[offsets[l]..offsets[l + 1]]`),
/// each list in row order.
struct Inverted {
    offsets: Vec<usize>,
    rows: Vec<u32>,
}

impl Inverted {
    fn list(&self, l: usize) -> Rows<'_> {
        &self.rows[self.offsets[l]..self.offsets[l + 1]]
    }
}

/// Inverts `lists_of` (`width` lists per row, row-major) into the rows of each list.
fn invert(lists_of: &[u32], width: usize, lists: usize) -> Inverted {
    let mut offsets = vec![0usize; lists + 1];
    for &l in lists_of {
        offsets[l as usize + 1] += 1;
    }
    for l in 0..lists {
        offsets[l + 1] += offsets[l];
    }
    let mut next = offsets.clone();
    let mut rows = vec![0u32; lists_of.len()];
    for (i, ls) in lists_of.chunks_exact(width.max(1)).enumerate() {
        for &l in ls {
            rows[next[l as usize]] = i as u32;
            next[l as usize] += 1;
        }
    }
    Inverted { offsets, rows }
}

/// One worker's candidate table and scratch space.
struct Worker {
    top: TopK,
    columns: Vec<f32>,
    column_norms: Vec<f32>,
    queries: Vec<f32>,
    product: Vec<f32>,
}

impl Worker {
    fn new(slots: usize, width: usize) -> Self {
        Self {
            top: TopK::new(slots, width),
            columns: Vec::new(),
            column_norms: Vec::new(),
            queries: Vec::new(),
            product: Vec::new(),
        }
    }

    /// Offers the distance of every query row (candidate-table slot `slot(q)`) to every
    /// row of `columns` (already gathered into `self.columns`) to the query's list only.
    fn offer(
        &mut self,
        d: &Data,
        queries: Rows,
        slot: impl Fn(usize) -> usize,
        columns: Rows,
        lhs: Option<&[f32]>,
    ) {
        let (m, w) = (queries.len(), columns.len());
        let lhs = match lhs {
            Some(block) => block,
            None => {
                d.gather(queries, &mut self.queries);
                &self.queries
            }
        };
        self.product.resize(m * w, 0.0);
        matmul(
            &mut self.product,
            lhs,
            &self.columns,
            Rhs::Transposed,
            m,
            w,
            d.dim,
            false,
            1,
        );
        for (q, (dots, &r)) in self.product.chunks_exact_mut(w).zip(queries).enumerate() {
            let (r, s) = (r as usize, slot(q));
            to_distances(dots, d.norms[r], &self.column_norms);
            let mut worst = self.top.worst(s);
            for (&dist, &c) in dots.iter().zip(columns) {
                if dist <= worst && d.groups[c as usize] != d.groups[r] {
                    self.top.offer(s, c, dist);
                    worst = self.top.worst(s);
                }
            }
        }
    }

    fn load_columns(&mut self, d: &Data, columns: Rows) {
        d.gather(columns, &mut self.columns);
        self.column_norms.clear();
        self.column_norms
            .extend(columns.iter().map(|&c| d.norms[c as usize]));
    }
}

/// The exact candidate table (`width` per row) of the rows `rows` against every row,
/// indexed by position in `rows`.
fn exact_for(d: &Data, rows: Rows, width: usize) -> TopK {
    let mut queries = Vec::new();
    d.gather(rows, &mut queries);
    let tiles = d.n().div_ceil(TILE);
    (0..tiles)
        .into_par_iter()
        .fold(
            || Worker::new(rows.len(), width),
            |mut w, t| {
                let columns: Vec<u32> = (t * TILE..((t + 1) * TILE).min(d.n()))
                    .map(|c| c as u32)
                    .collect();
                w.load_columns(d, &columns);
                w.offer(d, rows, |q| q, &columns, Some(&queries));
                w
            },
        )
        .map(|w| w.top)
        .reduce(|| TopK::new(rows.len(), width), TopK::merge)
}

/// Searches every list for the rows that probe it (`queries`) into a fresh table (`slots`
/// per row), list by list.
fn search_lists(d: &Data, members: &Inverted, queries: &Inverted, slots: usize) -> TopK {
    // Largest lists first, so that the last ones to finish are short.
    let mut order: Vec<usize> = (0..members.offsets.len() - 1).collect();
    let cost = |l: usize| members.list(l).len() * queries.list(l).len();
    order.sort_by_key(|&l| std::cmp::Reverse(cost(l)));
    // One table per thread (at a million rows each is 40 MB), each pulling lists in turn.
    let next = AtomicUsize::new(0);
    (0..rayon::current_num_threads())
        .into_par_iter()
        .map(|_| {
            let mut w = Worker::new(d.n(), slots);
            while let Some(&l) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (columns, asking) = (members.list(l), queries.list(l));
                if columns.is_empty() || asking.is_empty() {
                    continue;
                }
                w.load_columns(d, columns);
                for block in asking.chunks(QUERY_BLOCK) {
                    w.offer(d, block, |q| block[q] as usize, columns, None);
                }
            }
            w.top
        })
        .reduce(|| TopK::new(d.n(), slots), TopK::merge)
}

/// The closest match of each listed row in `nn` equals the exact one (same row, or a row at
/// the same exact distance), as a share of the rows that have a match.
fn agreement(nn: &Neighbours, rows: Rows, exact: &Neighbours, offset: usize) -> f64 {
    let (mut asked, mut equal) = (0usize, 0usize);
    for (s, &r) in rows.iter().enumerate() {
        let Some((j, dj)) = exact.row(offset + s).next() else {
            continue;
        };
        asked += 1;
        equal += usize::from(
            nn.row(r as usize)
                .next()
                .is_some_and(|(i, di)| i == j || di == dj),
        );
    }
    if asked == 0 {
        1.0
    } else {
        equal as f64 / asked as f64
    }
}

/// The number of lists for `n` rows.
pub(super) fn lists_for(n: usize) -> usize {
    ((n as f64).sqrt() * LISTS_PER_SQRT_N).round() as usize
}

/// The k nearest neighbours by the index, with what it measured; `None` when reaching the
/// target recall would cost about as much as the exact search.
pub(super) fn search(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    norms: &[f32],
    opts: &SearchOptions,
) -> Option<(Neighbours, SearchReport)> {
    let d = Data {
        data,
        dim,
        norms,
        groups,
    };
    let n = d.n();
    if lists_for(n) < 2 || n < 4 {
        return None;
    }
    let centroids = train(&d, lists_for(n));
    let lists = centroids.lists;

    // Two disjoint samples, searched exactly in one pass: calibration, then held out.
    let per = opts.sample.min(n / 2).max(1);
    let sampled = sample(&mut Rng::derive(SEED, 1), n, 2 * per);
    let (calibration, held_out) = sampled.split_at(per);
    let width = k + MARGIN;
    let exact = refine(data, dim, k, &exact_for(&d, &sampled, width), |s| {
        sampled[s] as usize
    });

    // The place of the exact match's list in each calibration row's centroid order.
    let matches: Vec<(usize, u32)> = calibration
        .iter()
        .enumerate()
        .filter_map(|(s, &r)| exact.row(s).next().map(|(j, _)| (r as usize, j as u32)))
        .collect();
    let homes = centroids.ranked(
        &d,
        Some(&matches.iter().map(|m| m.1).collect::<Vec<_>>()),
        0..1,
    );
    let asking: Vec<u32> = matches.iter().map(|m| m.0 as u32).collect();
    let mut places: Vec<usize> = {
        let mut scores = Vec::new();
        let mut block = Vec::new();
        d.gather(&asking, &mut block);
        centroids.scores(&block, asking.len(), dim, &mut scores);
        scores
            .chunks_exact(lists)
            .zip(&homes)
            .map(|(row, &home)| {
                let at = (row[home as usize], home);
                row.iter()
                    .enumerate()
                    .filter(|&(c, &s)| s < at.0 || (s == at.0 && (c as u32) < at.1))
                    .count()
            })
            .collect()
    };
    places.sort_unstable();
    // A little above the target on the calibration half, so that the held-out half
    // (another draw of the same rows) meets it.
    let goal = opts.recall + (1.0 - opts.recall) / 4.0;
    let needed = ((goal * places.len() as f64).ceil() as usize).min(places.len());
    let mut probes = needed
        .checked_sub(1)
        .map_or(1, |i| places[i] + 1)
        .max(MIN_PROBES)
        .min(lists);

    // The search itself: every row's nearest `probes` lists, then more while the held-out
    // rows say the recall is short. The first assignment gives each row's list too.
    let first = centroids.ranked(&d, None, 0..probes);
    let primary: Vec<u32> = first.iter().step_by(probes).copied().collect();
    let members = invert(&primary, 1, lists);
    drop(primary);
    let mut more = Some(first);
    let mut table = TopK::new(n, width);
    let (mut searched, mut pairs) = (0, 0usize);
    let farthest = farthest_for(n);
    loop {
        if probes * 2 > lists {
            return None;
        }
        let probed = more
            .take()
            .unwrap_or_else(|| centroids.ranked(&d, None, searched..probes));
        let queries = invert(&probed, probes - searched, lists);
        drop(probed);
        pairs += (0..lists)
            .map(|l| members.list(l).len() * queries.list(l).len())
            .sum::<usize>();
        // The exact search compares n^2 / 2 pairs, in larger and faster products.
        if pairs + farthest * n > n * n / 4 {
            return None;
        }
        table = table.merge(search_lists(&d, &members, &queries, width));
        searched = probes;
        let mut nn = refine(data, dim, k, &table, |i| i);
        let exact_from = search_farthest(&d, &mut nn, farthest, width);
        let recall = agreement(&nn, held_out, &exact, per);
        if recall >= opts.recall {
            return Some((
                nn,
                SearchReport::Ivf {
                    lists,
                    probes,
                    pairs: pairs + farthest * n,
                    exact_rows: farthest,
                    exact_from: f64::from(exact_from.sqrt()),
                    recall_sampled: recall,
                    sample: held_out.len(),
                    calibration_sample: calibration.len(),
                },
            ));
        }
        probes *= 2;
    }
}

/// How many of the rows farthest from their neighbours are searched exactly after the
/// index: the top of the ranking is what a user reads.
fn farthest_for(n: usize) -> usize {
    (1000 + n / 500).min(n / 20)
}

/// Searches the `count` rows whose k-th neighbour (found by the index) is farthest again,
/// exactly, and replaces their lists; returns the least of their k-th squared distances.
///
/// The index can only miss neighbours, never invent closer ones, so a row's distances by
/// the index are at least its exact ones. A row left out therefore has every distance
/// (closest, k-nearest mean, k-th) below the returned value by the exact search too: every
/// row whose exact closest-match distance or k-NN mean reaches it was searched exactly,
/// and the ranking from there up is the exact search's.
fn search_farthest(d: &Data, nn: &mut Neighbours, count: usize, width: usize) -> f32 {
    let k = nn.k;
    let kth = |i: usize| nn.dist2[i * k + k - 1];
    let mut rows: Vec<u32> = (0..d.n() as u32).collect();
    let far_first = |a: &u32, b: &u32| kth(*b as usize).total_cmp(&kth(*a as usize)).then(a.cmp(b));
    if count < rows.len() {
        rows.select_nth_unstable_by(count, far_first);
        rows.truncate(count);
    }
    rows.sort_unstable();
    let found = refine(d.data, d.dim, k, &exact_for(d, &rows, width), |s| {
        rows[s] as usize
    });
    let least = rows
        .iter()
        .map(|&r| kth(r as usize))
        .fold(f32::INFINITY, f32::min);
    for (s, &r) in rows.iter().enumerate() {
        let (to, from) = (r as usize * k..(r as usize + 1) * k, s * k..(s + 1) * k);
        nn.index[to.clone()].copy_from_slice(&found.index[from.clone()]);
        nn.dist2[to].copy_from_slice(&found.dist2[from]);
    }
    least
}

/// Fewest lists probed: a row near a list's border has its neighbours on both sides.
const MIN_PROBES: usize = 2;
