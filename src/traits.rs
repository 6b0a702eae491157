//! Crystal morphology: the traits a snow physicist reads off a particle image (size, shape,
//! symmetry, riming and transparency), measured on the segmented particle. They are
//! computed beside the CNN features (same decode), cached with them, fused into the ranking
//! by the crystals profile and written into every output.
//!
//! Segmentation: Otsu's threshold on the luminance; the background is the side of the
//! threshold that holds most of the image border (dark-field cameras and bright-field
//! probes alike); the particle is the largest 8-connected component, its holes filled.
//! An image without two classes (uniform, 1x1) has no particle: every trait is then 0 and
//! `particles` says 0 (the documented fallback; never NaN or infinity).

use image::RgbImage;

/// Name, unit and meaning of each trait, in the order of [`Traits::values`].
pub const TRAITS: [(&str, &str, &str); COUNT] = [
    (
        "area",
        "px",
        "particle area in pixels of the original image",
    ),
    (
        "max_dimension",
        "px",
        "longest dimension (maximum Feret diameter)",
    ),
    (
        "particles",
        "count",
        "particles in the image (components of at least 5 % of the largest)",
    ),
    ("solidity", "ratio", "area / convex hull area"),
    ("circularity", "ratio", "4 pi area / perimeter^2"),
    (
        "aspect_ratio",
        "ratio",
        "minor / major axis of the second moments",
    ),
    ("roughness", "ratio", "perimeter / convex hull perimeter"),
    (
        "fractal_dimension",
        "1",
        "box-counting dimension of the outline",
    ),
    (
        "radial_variation",
        "ratio",
        "coefficient of variation of the radius around the centroid",
    ),
    (
        "sixfold_symmetry",
        "ratio",
        "share of the outline's radial power in the 6th harmonic",
    ),
    (
        "contrast",
        "ratio",
        "mean particle minus background luminance, / 255",
    ),
    (
        "inner_variation",
        "ratio",
        "luminance spread inside the particle / contrast",
    ),
    (
        "texture",
        "ratio",
        "mean luminance gradient inside the particle / contrast",
    ),
    (
        "transparency",
        "ratio",
        "share of the particle's filled area that is holes",
    ),
    ("extent", "ratio", "area / bounding box area"),
    (
        "border_background",
        "ratio",
        "share of the image border on the background side (1 = isolated particle)",
    ),
    (
        "hue_variation",
        "ratio",
        "circular variance of the hue (0 = grey or one tint, as imaging probes record)",
    ),
];
pub const COUNT: usize = 17;
/// Bumped whenever a trait's definition changes, so that cached values are recomputed.
pub const VERSION: u32 = 2;

/// The traits that describe the particle (all but the last two, which describe the
/// framing and the imaging): the ones fused into the crystals ranking.
pub const FUSED: [usize; COUNT - 2] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

/// Position of the trait called `name` in [`TRAITS`]; panics on a name not listed there.
pub fn index(name: &str) -> usize {
    TRAITS
        .iter()
        .position(|t| t.0 == name)
        .unwrap_or_else(|| panic!("no trait called {name}"))
}

/// Traits whose spread is multiplicative (sizes, counts): compared on a log scale.
const LOG_SCALED: [&str; 3] = ["area", "max_dimension", "particles"];

/// The longest side traits are measured at; larger images are shrunk first (lengths and
/// areas are reported in pixels of the original).
const MEASURE_SIDE: u32 = 320;

/// The morphology of one image, in the order of [`TRAITS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traits {
    pub values: [f32; COUNT],
}

impl Traits {
    pub fn get(&self, name: &str) -> Option<f32> {
        TRAITS
            .iter()
            .position(|t| t.0 == name)
            .map(|i| self.values[i])
    }
}

/// Measures `image`, whose pixels are `scale` original pixels wide (1 unless the decoder
/// shrank it).
pub fn measure(image: &RgbImage, scale: f32) -> Traits {
    let (w, h) = image.dimensions();
    let shrink = (w.max(h) as f32 / MEASURE_SIDE as f32).max(1.0);
    let small;
    let image = if shrink > 1.0 {
        small = image::imageops::resize(
            image,
            ((w as f32 / shrink).round() as u32).max(1),
            ((h as f32 / shrink).round() as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        &small
    } else {
        image
    };
    let gray = Gray::from_rgb(image);
    let px = scale * w as f32 / gray.w as f32;
    let mut values = match Particle::segment(&gray) {
        Some(p) => p.traits(&gray, px),
        None => [0.0; COUNT],
    };
    values[COUNT - 1] = hue_variation(image);
    Traits {
        values: values.map(|v| if v.is_finite() { v } else { 0.0 }),
    }
}

/// Turns each trait column of `rows` (n x COUNT) into robust z-scores against the folder:
/// (x - median) / (1.4826 MAD), the standard deviation when the MAD is 0, clipped to
/// +-`CLIP` so one trait cannot drown the rest. Sizes and counts are compared on a log scale.
pub fn standardise(rows: &[f32]) -> Vec<f32> {
    const CLIP: f32 = 6.0;
    let n = rows.len() / COUNT;
    let mut out = vec![0.0; rows.len()];
    for (j, (name, _, _)) in TRAITS.iter().enumerate() {
        let column: Vec<f32> = (0..n)
            .map(|i| {
                let v = rows[i * COUNT + j];
                if LOG_SCALED.contains(name) {
                    v.max(0.0).ln_1p()
                } else {
                    v
                }
            })
            .collect();
        let mut sorted = column.clone();
        sorted.sort_by(f32::total_cmp);
        if sorted.is_empty() {
            continue;
        }
        let median = crate::linalg::quantile(&sorted, 0.5);
        let mut deviations: Vec<f32> = column.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f32::total_cmp);
        let mad = 1.4826 * crate::linalg::quantile(&deviations, 0.5);
        let mean = column.iter().sum::<f32>() / n as f32;
        let sd = (column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
        let spread = if mad > 1e-6 { mad } else { sd };
        if spread <= 1e-6 {
            continue; // the same for every image: says nothing
        }
        for (i, v) in column.iter().enumerate() {
            out[i * COUNT + j] = ((v - median) / spread).clamp(-CLIP, CLIP);
        }
    }
    out
}

/// 1 - the length of the chroma-weighted mean hue vector, on the opponent axes (R - G,
/// (R + G) / 2 - B): 0 for grey images and for images in one tint (false-coloured probes),
/// towards 1 for photographs of many colours.
fn hue_variation(image: &RgbImage) -> f32 {
    let (mut sx, mut sy, mut weight) = (0f64, 0f64, 0f64);
    for p in image.pixels() {
        let [r, g, b] = p.0.map(f64::from);
        let (x, y) = (r - g, (r + g) / 2.0 - b);
        sx += x;
        sy += y;
        weight += x.hypot(y);
    }
    if weight < 1e-9 {
        return 0.0;
    }
    (1.0 - sx.hypot(sy) / weight) as f32
}

/// Luminance, row-major.
struct Gray {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Gray {
    fn from_rgb(image: &RgbImage) -> Self {
        let px = image
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0;
                ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
            })
            .collect();
        Gray {
            w: image.width() as usize,
            h: image.height() as usize,
            px,
        }
    }

    fn on_border(&self, i: usize) -> bool {
        let (x, y) = (i % self.w, i / self.w);
        x == 0 || y == 0 || x + 1 == self.w || y + 1 == self.h
    }

    fn border(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.w * self.h).filter(|&i| self.on_border(i))
    }
}

/// Otsu's threshold: pixels above it are one class. `None` when there is only one level.
fn otsu(gray: &Gray) -> Option<u8> {
    let mut hist = [0f64; 256];
    gray.px.iter().for_each(|&v| hist[v as usize] += 1.0);
    let total = gray.px.len() as f64;
    let sum_all: f64 = (0..256).map(|v| v as f64 * hist[v]).sum();
    let (mut weight, mut sum, mut best) = (0.0, 0.0, None);
    let mut best_between = 0.0;
    for (t, &count) in hist.iter().enumerate().take(255) {
        weight += count;
        sum += t as f64 * count;
        if weight == 0.0 || weight == total {
            continue;
        }
        let (mean_low, mean_high) = (sum / weight, (sum_all - sum) / (total - weight));
        let between = weight * (total - weight) * (mean_low - mean_high).powi(2);
        if between > best_between {
            best_between = between;
            best = Some(t as u8);
        }
    }
    best
}

/// The largest particle: its pixel mask (holes filled), the unfilled mask, and how many
/// particles the image holds.
struct Particle {
    filled: Vec<bool>,
    solid: usize,
    particles: usize,
    background_mean: f32,
    border_background: f32,
}

impl Particle {
    fn segment(gray: &Gray) -> Option<Particle> {
        let threshold = otsu(gray)?;
        let above = |i: usize| gray.px[i] > threshold;
        let border_above = gray.border().filter(|&i| above(i)).count();
        let border_len = gray.border().count();
        let particle_is_above = border_above * 2 < border_len;
        let border_particle = if particle_is_above {
            border_above
        } else {
            border_len - border_above
        };
        let border_background = 1.0 - border_particle as f32 / border_len.max(1) as f32;
        let foreground: Vec<bool> = (0..gray.px.len())
            .map(|i| above(i) == particle_is_above)
            .collect();
        let (label, sizes) = components(gray.w, gray.h, &foreground);
        let (largest, &size) = sizes.iter().enumerate().max_by_key(|(_, s)| **s)?;
        let particles = sizes.iter().filter(|&&s| s * 20 >= size && s >= 4).count();
        let particle: Vec<bool> = label.iter().map(|&l| l == largest as u32 + 1).collect();
        let filled = fill_holes(gray.w, gray.h, &particle);
        let background: Vec<f32> = (0..gray.px.len())
            .filter(|&i| !filled[i])
            .map(|i| gray.px[i] as f32)
            .collect();
        let background_mean = if background.is_empty() {
            (if particle_is_above { 0.0 } else { 255.0 }) as f32
        } else {
            background.iter().sum::<f32>() / background.len() as f32
        };
        Some(Particle {
            filled,
            solid: size,
            particles,
            background_mean,
            border_background,
        })
    }

    fn traits(&self, gray: &Gray, px: f32) -> [f32; COUNT] {
        let (w, h) = (gray.w, gray.h);
        let inside = |x: isize, y: isize| {
            x >= 0
                && y >= 0
                && (x as usize) < w
                && (y as usize) < h
                && self.filled[y as usize * w + x as usize]
        };
        let mut area = 0usize;
        let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64, 0f64);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut cracks = 0usize;
        let mut outline = Vec::new();
        let mut corners = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if !self.filled[y * w + x] {
                    continue;
                }
                area += 1;
                let (fx, fy) = (x as f64, y as f64);
                sx += fx;
                sy += fy;
                sxx += fx * fx;
                syy += fy * fy;
                sxy += fx * fy;
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                let (ix, iy) = (x as isize, y as isize);
                let open = [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .filter(|(dx, dy)| !inside(ix + dx, iy + dy))
                    .count();
                if open > 0 {
                    cracks += open;
                    outline.push((x, y));
                    for (cx, cy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        corners.push(((x + cx) as f64, (y + cy) as f64));
                    }
                }
            }
        }
        let a = area as f64;
        let (mx, my) = (sx / a, sy / a);
        let (cxx, cyy, cxy) = (sxx / a - mx * mx, syy / a - my * my, sxy / a - mx * my);
        let half_trace = (cxx + cyy) / 2.0;
        let root = (((cxx - cyy) / 2.0).powi(2) + cxy * cxy).sqrt();
        let (major, minor) = (half_trace + root, (half_trace - root).max(0.0));
        let aspect = if major > 0.0 {
            (minor / major).sqrt()
        } else {
            1.0
        };

        let hull = convex_hull(corners);
        let (hull_area, hull_perimeter, feret) = polygon_measures(&hull);
        // Crack edges overestimate a smooth outline's length by 4/pi on average.
        let perimeter = cracks as f64 * std::f64::consts::FRAC_PI_4;
        let circularity = (4.0 * std::f64::consts::PI * a / perimeter.powi(2)).min(1.0);

        let (radial_variation, sixfold) = radial_profile(&outline, mx + 0.5, my + 0.5);
        let fractal = box_counting_dimension(w, h, &outline);

        let mut sum = 0f64;
        let mut sum2 = 0f64;
        let mut gradient = 0f64;
        let mut interior = 0usize;
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if !self.filled[i] {
                    continue;
                }
                let v = gray.px[i] as f64;
                sum += v;
                sum2 += v * v;
                if x > 0 && y > 0 && x + 1 < w && y + 1 < h {
                    let gx = gray.px[i + 1] as f64 - gray.px[i - 1] as f64;
                    let gy = gray.px[i + w] as f64 - gray.px[i - w] as f64;
                    gradient += (gx * gx + gy * gy).sqrt() / 2.0;
                    interior += 1;
                }
            }
        }
        let mean = sum / a;
        let spread = (sum2 / a - mean * mean).max(0.0).sqrt();
        let contrast = (mean - self.background_mean as f64).abs();
        let texture = if interior > 0 {
            gradient / interior as f64
        } else {
            0.0
        };
        let bbox = ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64;
        let px = px as f64;
        [
            a * px * px,
            feret * px,
            self.particles as f64,
            (a / hull_area.max(1.0)).min(1.0),
            circularity,
            aspect,
            perimeter / hull_perimeter.max(1.0),
            fractal,
            radial_variation,
            sixfold,
            contrast / 255.0,
            spread / (contrast + 1.0),
            texture / (contrast + 1.0),
            1.0 - self.solid as f64 / a,
            a / bbox,
            self.border_background as f64,
            0.0, // hue_variation, measured on the colour image by `measure`
        ]
        .map(|v| v as f32)
    }
}

/// 8-connected components of `mask`: a label per pixel (0 = background, else 1-based) and
/// the size of each component.
fn components(w: usize, h: usize, mask: &[bool]) -> (Vec<u32>, Vec<usize>) {
    let mut label = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32 + 1;
        let mut size = 0;
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && label[j] == 0 {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

/// `mask` with every region of background not 4-connected to the image border filled in.
fn fill_holes(w: usize, h: usize, mask: &[bool]) -> Vec<bool> {
    let mut outside = vec![false; mask.len()];
    let mut stack: Vec<usize> = (0..mask.len())
        .filter(|&i| {
            let (x, y) = (i % w, i / w);
            (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && !mask[i]
        })
        .collect();
    stack.iter().for_each(|&i| outside[i] = true);
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let mut visit = |j: usize| {
            if !mask[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < w {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - w);
        }
        if y + 1 < h {
            visit(i + w);
        }
    }
    outside.iter().map(|o| !o).collect()
}

/// Convex hull (Andrew's monotone chain), counter-clockwise, without repeated points.
fn convex_hull(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
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
fn polygon_measures(hull: &[(f64, f64)]) -> (f64, f64, f64) {
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
fn radial_profile(outline: &[(usize, usize)], cx: f64, cy: f64) -> (f64, f64) {
    const BINS: usize = 72;
    let mut radius = [f64::NAN; BINS];
    for &(x, y) in outline {
        let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let angle = dy.atan2(dx) + std::f64::consts::PI;
        let bin = ((angle / std::f64::consts::TAU * BINS as f64) as usize).min(BINS - 1);
        let r = dx.hypot(dy);
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
    let power = |k: usize| {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, r) in radius.iter().enumerate() {
            let phase = std::f64::consts::TAU * (k * i) as f64 / BINS as f64;
            re += r * phase.cos();
            im += r * phase.sin();
        }
        re * re + im * im
    };
    let total: f64 = (1..=BINS / 2).map(power).sum();
    let sixfold = if total > 1e-12 { power(6) / total } else { 0.0 };
    (sd / mean, sixfold)
}

/// Slope of log(boxes touching the outline) against log(1 / box size), boxes of 1..16 px.
fn box_counting_dimension(w: usize, h: usize, outline: &[(usize, usize)]) -> f64 {
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
            let mut boxes: Vec<(usize, usize)> =
                outline.iter().map(|&(x, y)| (x / s, y / s)).collect();
            boxes.sort_unstable();
            boxes.dedup();
            (-(s as f64).ln(), (boxes.len() as f64).ln())
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
mod tests;
