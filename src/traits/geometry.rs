//! Pixel-geometry helpers of the morphology: components, hole filling, convex hull,
//! polygon measures, the radial profile and the box-counting dimension.

use std::sync::OnceLock;

/// 8-connected components of `mask`: a label per pixel (0 = background, else 1-based) and
/// the size of each component.
pub(super) fn components(w: usize, h: usize, mask: &[bool]) -> (Vec<u32>, Vec<usize>) {
    let mut label = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    // Coordinates, not indices, on the stack: a division per pixel to recover them was most
    // of the fill's time.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32 + 1;
        let mut size = 0;
        label[start] = id;
        stack.push((start % w, start / w));
        while let Some((x, y)) = stack.pop() {
            size += 1;
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if mask[j] && label[j] == 0 {
                        label[j] = id;
                        stack.push((nx, ny));
                    }
                }
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

/// `mask` with every region of background not 4-connected to the image border filled in.
pub(super) fn fill_holes(w: usize, h: usize, mask: &[bool]) -> Vec<bool> {
    let mut outside = vec![false; mask.len()];
    let mut stack: Vec<(usize, usize)> = border(w, h).filter(|&(x, y)| !mask[y * w + x]).collect();
    stack.iter().for_each(|&(x, y)| outside[y * w + x] = true);
    while let Some((x, y)) = stack.pop() {
        let mut visit = |x: usize, y: usize| {
            let j = y * w + x;
            if !mask[j] && !outside[j] {
                outside[j] = true;
                stack.push((x, y));
            }
        };
        if x > 0 {
            visit(x - 1, y);
        }
        if x + 1 < w {
            visit(x + 1, y);
        }
        if y > 0 {
            visit(x, y - 1);
        }
        if y + 1 < h {
            visit(x, y + 1);
        }
    }
    outside.iter().map(|o| !o).collect()
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
