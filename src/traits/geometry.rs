//! Pixel-geometry helpers of the morphology: components, hole filling, convex hull,
//! polygon measures, the radial profile and the box-counting dimension.

use std::ops::Range;
use std::sync::OnceLock;

/// The maximal runs of `value` in one mask row, left to right.
pub(super) fn row_runs(row: &[bool], value: bool) -> impl Iterator<Item = Range<usize>> + '_ {
    // SAFETY: a bool is one byte holding 0 or 1, so the row reads as bytes of the same
    // length and lifetime. As bytes, memchr finds each run's ends many bytes at a time (a
    // byte-by-byte search was a tenth of the traits' time).
    let bytes = unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), row.len()) };
    let mut x = 0;
    std::iter::from_fn(move || {
        x += memchr::memchr(u8::from(value), bytes.get(x..)?)?;
        let start = x;
        x += memchr::memchr(u8::from(!value), &bytes[x..]).unwrap_or(row.len() - x);
        Some(start..x)
    })
}

/// A maximal run of equal mask values in row `y`: columns `start..end`.
#[derive(Clone, Copy)]
struct Run {
    y: usize,
    start: usize,
    end: usize,
}

/// The runs of `value` in a `w` x `h` mask, in raster order, joined into connected regions
/// (8-connected when `diagonal`, else 4-connected). Labelling runs rather than flooding
/// pixels touches each pixel once, where a flood fill looked at each one's 8 neighbours.
struct Regions {
    runs: Vec<Run>,
    /// Per run, the index of its region's first run in raster order (so regions come in
    /// the order of their first pixel, as a raster-order flood fill numbers them).
    root: Vec<usize>,
}

impl Regions {
    fn of(w: usize, h: usize, mask: &[bool], value: bool, diagonal: bool) -> Self {
        let mut runs = Vec::new();
        // Where each row's runs begin in `runs`.
        let mut row_start = Vec::with_capacity(h + 1);
        for (y, row) in mask.chunks_exact(w.max(1)).take(h).enumerate() {
            row_start.push(runs.len());
            runs.extend(row_runs(row, value).map(|x| Run {
                y,
                start: x.start,
                end: x.end,
            }));
        }
        row_start.push(runs.len());
        // Union-find whose root is always the region's earliest run.
        let mut parent: Vec<usize> = (0..runs.len()).collect();
        let find = |parent: &mut Vec<usize>, mut i: usize| {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        };
        let reach = usize::from(diagonal);
        for y in 1..row_start.len().saturating_sub(1) {
            let (mut a, a_end) = (row_start[y - 1], row_start[y]);
            let (mut b, b_end) = (row_start[y], row_start[y + 1]);
            while a < a_end && b < b_end {
                let (above, below) = (runs[a], runs[b]);
                if above.start < below.end + reach && below.start < above.end + reach {
                    let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                    parent[ra.max(rb)] = ra.min(rb);
                }
                // The run that ends first can touch nothing further along the other row.
                if above.end < below.end {
                    a += 1
                } else {
                    b += 1
                }
            }
        }
        let root = (0..runs.len()).map(|i| find(&mut parent, i)).collect();
        Regions { runs, root }
    }

    /// Sets the pixels of the runs `keep` selects (by root) in the row-major `mask`.
    fn paint(&self, w: usize, mask: &mut [bool], keep: impl Fn(usize) -> bool) {
        for (run, &root) in self.runs.iter().zip(&self.root) {
            if keep(root) {
                mask[run.y * w + run.start..run.y * w + run.end].fill(true);
            }
        }
    }
}

/// The 8-connected components of `mask`, in the order of their first pixel.
pub(super) struct Components {
    regions: Regions,
    /// Per component, its root run.
    roots: Vec<usize>,
    /// Per component, its pixel count.
    pub sizes: Vec<usize>,
}

impl Components {
    pub fn of(w: usize, h: usize, mask: &[bool]) -> Self {
        let regions = Regions::of(w, h, mask, true, true);
        let (mut roots, mut sizes) = (Vec::new(), Vec::new());
        let mut component = vec![usize::MAX; regions.runs.len()];
        for (i, run) in regions.runs.iter().enumerate() {
            let root = regions.root[i];
            if root == i {
                component[i] = roots.len();
                roots.push(i);
                sizes.push(0);
            }
            sizes[component[root]] += run.end - run.start;
        }
        Components {
            regions,
            roots,
            sizes,
        }
    }

    /// The pixel mask of component `index` (an index into `sizes`).
    pub fn mask(&self, w: usize, h: usize, index: usize) -> Vec<bool> {
        let mut mask = vec![false; w * h];
        let root = self.roots[index];
        self.regions.paint(w, &mut mask, |r| r == root);
        mask
    }
}

/// `mask` with every region of background not 4-connected to the image border filled in.
pub(super) fn fill_holes(w: usize, h: usize, mask: &[bool]) -> Vec<bool> {
    let background = Regions::of(w, h, mask, false, false);
    let mut outside = vec![false; background.runs.len()];
    for (run, &root) in background.runs.iter().zip(&background.root) {
        outside[root] |= run.y == 0 || run.y + 1 == h || run.start == 0 || run.end == w;
    }
    let mut filled = mask.to_vec();
    background.paint(w, &mut filled, |root| !outside[root]);
    filled
}

/// The pixels of a `w` x `h` image's outermost ring, each once, in raster order.
pub(super) fn border(w: usize, h: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..h).flat_map(move |y| {
        // Inner rows hold only their first and last pixel.
        let step = if y == 0 || y + 1 == h {
            1
        } else {
            w.saturating_sub(1).max(1)
        };
        (0..w).step_by(step).map(move |x| (x, y))
    })
}

/// Convex hull (Andrew's monotone chain), counter-clockwise, without repeated points.
pub(super) fn convex_hull(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * points.len());
    for pass in [
        &points[..],
        &points.iter().rev().copied().collect::<Vec<_>>()[..],
    ] {
        let floor = hull.len();
        for &p in pass {
            while hull.len() >= floor + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Area, perimeter and diameter (largest vertex distance) of a convex polygon.
pub(super) fn polygon_measures(hull: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = hull.len();
    let (mut area, mut perimeter, mut diameter) = (0.0, 0.0, 0f64);
    for i in 0..n {
        let (a, b) = (hull[i], hull[(i + 1) % n]);
        area += a.0 * b.1 - b.0 * a.1;
        perimeter += (b.0 - a.0).hypot(b.1 - a.1);
        for c in &hull[i + 1..] {
            diameter = diameter.max((c.0 - a.0).hypot(c.1 - a.1));
        }
    }
    (area.abs() / 2.0, perimeter, diameter)
}

/// The outline's radius around the centroid in 72 angular bins (the farthest outline pixel
/// per bin): its coefficient of variation, and the share of its variation (harmonics 1..36)
/// in the 6th harmonic, which six-armed and hexagonal crystals concentrate.
pub(super) fn radial_profile(outline: &[(usize, usize)], cx: f64, cy: f64) -> (f64, f64) {
    const BINS: usize = 72;
    let mut radius = [f64::NAN; BINS];
    for &(x, y) in outline {
        let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let angle = dy.atan2(dx) + std::f64::consts::PI;
        let bin = ((angle / std::f64::consts::TAU * BINS as f64) as usize).min(BINS - 1);
        let r = (dx * dx + dy * dy).sqrt(); // pixel offsets: no overflow, unlike hypot's cost
        if radius[bin].is_nan() || r > radius[bin] {
            radius[bin] = r;
        }
    }
    // Bins no outline pixel fell in (tiny particles) take their nearest filled neighbour.
    let Some(seed) = radius.iter().position(|r| !r.is_nan()) else {
        return (0.0, 0.0);
    };
    let mut last = radius[seed];
    for k in 0..BINS {
        let i = (seed + k) % BINS;
        if radius[i].is_nan() {
            radius[i] = last;
        }
        last = radius[i];
    }
    let mean = radius.iter().sum::<f64>() / BINS as f64;
    if mean <= 0.0 {
        return (0.0, 0.0);
    }
    let sd = (radius.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / BINS as f64).sqrt();
    // cos and sin of TAU * m / BINS for every product m = k * i the harmonics use, made
    // once: 2,600 sincos an image were more than the rest of the profile.
    static PHASES: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    let phases = PHASES.get_or_init(|| {
        (0..=BINS / 2 * (BINS - 1))
            .map(|m| {
                let phase = std::f64::consts::TAU * m as f64 / BINS as f64;
                (phase.cos(), phase.sin())
            })
            .collect()
    });
    let power = |k: usize| {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, r) in radius.iter().enumerate() {
            let (cos, sin) = phases[k * i];
            re += r * cos;
            im += r * sin;
        }
        re * re + im * im
    };
    let total: f64 = (1..=BINS / 2).map(power).sum();
    let sixfold = if total > 1e-12 { power(6) / total } else { 0.0 };
    (sd / mean, sixfold)
}

/// Slope of log(boxes touching the outline) against log(1 / box size), boxes of 1..16 px.
pub(super) fn box_counting_dimension(w: usize, h: usize, outline: &[(usize, usize)]) -> f64 {
    let sizes: Vec<usize> = [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&s| s == 1 || s * 4 <= w.max(h))
        .collect();
    if sizes.len() < 2 || outline.is_empty() {
        return 0.0;
    }
    let points: Vec<(f64, f64)> = sizes
        .iter()
        .map(|&s| {
            let columns = w.div_ceil(s);
            let mut touched = vec![false; columns * h.div_ceil(s)];
            let boxes = outline
                .iter()
                .filter(|&&(x, y)| !std::mem::replace(&mut touched[y / s * columns + x / s], true))
                .count();
            (-(s as f64).ln(), (boxes as f64).ln())
        })
        .collect();
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Flood fill from each unlabelled pixel in raster order: the definition the run
    /// labelling must reproduce (component order included).
    fn flood(w: usize, h: usize, mask: &[bool], value: bool, diagonal: bool) -> Vec<usize> {
        let mut label = vec![0; mask.len()];
        let mut next = 0;
        for start in 0..mask.len() {
            if mask[start] != value || label[start] != 0 {
                continue;
            }
            next += 1;
            label[start] = next;
            let mut stack = vec![(start % w, start / w)];
            while let Some((x, y)) = stack.pop() {
                for (dx, dy) in [
                    (-1, -1),
                    (0, -1),
                    (1, -1),
                    (-1, 0),
                    (1, 0),
                    (-1, 1),
                    (0, 1),
                    (1, 1),
                ] {
                    if !diagonal && dx != 0 && dy != 0 {
                        continue;
                    }
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] == value && label[j] == 0 {
                        label[j] = next;
                        stack.push((nx as usize, ny as usize));
                    }
                }
            }
        }
        label
    }

    #[test]
    fn run_labelling_matches_flood_fill_on_random_masks() {
        let mut rng = Rng::new(11);
        for case in 0..300 {
            let (w, h) = (1 + rng.below(40), 1 + rng.below(40));
            let density = rng.f64();
            let mask: Vec<bool> = (0..w * h).map(|_| rng.f64() < density).collect();
            let want = flood(w, h, &mask, true, true);
            let components = Components::of(w, h, &mask);
            let count = want.iter().copied().max().unwrap_or(0);
            let sizes: Vec<usize> = (1..=count)
                .map(|l| want.iter().filter(|&&v| v == l).count())
                .collect();
            assert_eq!(components.sizes, sizes, "case {case}: {w}x{h}");
            for (index, label) in (1..=count).enumerate() {
                let expected: Vec<bool> = want.iter().map(|&v| v == label).collect();
                assert_eq!(components.mask(w, h, index), expected, "case {case}");
            }
            // Holes: background 4-connected regions that never reach the border.
            let background = flood(w, h, &mask, false, false);
            let reaches_border = |label: usize| {
                (0..w * h).any(|i| {
                    let (x, y) = (i % w, i / w);
                    background[i] == label && (x == 0 || y == 0 || x + 1 == w || y + 1 == h)
                })
            };
            let filled: Vec<bool> = (0..w * h)
                .map(|i| mask[i] || !reaches_border(background[i]))
                .collect();
            assert_eq!(fill_holes(w, h, &mask), filled, "case {case}: {w}x{h}");
        }
    }
}
