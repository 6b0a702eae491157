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

use geometry::{
    Components, border, box_counting_dimension, convex_hull, fill_holes, polygon_measures,
    radial_profile,
};
use image::RgbImage;
use rayon::prelude::*;

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
        small = crate::resize::triangle(
            image,
            ((w as f32 / shrink).round() as u32).max(1),
            ((h as f32 / shrink).round() as u32).max(1),
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

/// Where each trait's values lie in a folder: its median and robust spread, on a log scale
/// for sizes and counts. `z` places one value against them.
#[derive(Debug, Clone)]
pub struct Scales {
    median: [f32; COUNT],
    /// 0 when every image has the same value (the trait then says nothing).
    spread: [f32; COUNT],
}

impl Scales {
    /// The median and 1.4826 MAD of each trait column of `rows` (n x COUNT), the standard
    /// deviation when the MAD is 0.
    pub fn of(rows: &[f32]) -> Self {
        let n = rows.len() / COUNT;
        let mut scales = Scales {
            median: [0.0; COUNT],
            spread: [0.0; COUNT],
        };
        if n == 0 {
            return scales;
        }
        // Columns side by side, each median found by selection, not by sorting.
        let columns: Vec<(f32, f32)> = (0..COUNT)
            .into_par_iter()
            .map(|j| {
                let column: Vec<f32> = (0..n).map(|i| scaled(j, rows[i * COUNT + j])).collect();
                let median = crate::linalg::median(&mut column.clone());
                let mut deviations: Vec<f32> = column.iter().map(|v| (v - median).abs()).collect();
                let mad = 1.4826 * crate::linalg::median(&mut deviations);
                let mean = column.iter().sum::<f32>() / n as f32;
                let sd = (column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
                let spread = if mad > 1e-6 { mad } else { sd };
                (median, if spread > 1e-6 { spread } else { 0.0 })
            })
            .collect();
        for (j, (median, spread)) in columns.into_iter().enumerate() {
            scales.median[j] = median;
            scales.spread[j] = spread;
        }
        scales
    }

    /// The robust z-score of `value` for trait `j`, clipped to +-6 so one trait cannot
    /// drown the rest; 0 for a trait that is the same for every image.
    pub fn z(&self, j: usize, value: f32) -> f32 {
        const CLIP: f32 = 6.0;
        if self.spread[j] == 0.0 {
            return 0.0;
        }
        ((scaled(j, value) - self.median[j]) / self.spread[j]).clamp(-CLIP, CLIP)
    }
}

/// Sizes and counts are compared on a log scale.
fn scaled(j: usize, value: f32) -> f32 {
    if LOG_SCALED.contains(&TRAITS[j].0) {
        value.max(0.0).ln_1p()
    } else {
        value
    }
}

/// Turns each trait column of `rows` (n x COUNT) into robust z-scores against the folder
/// (`Scales::z`).
pub fn standardise(rows: &[f32]) -> Vec<f32> {
    let scales = Scales::of(rows);
    rows.chunks_exact(COUNT)
        .flat_map(|row| (0..COUNT).map(|j| scales.z(j, row[j])).collect::<Vec<_>>())
        .collect()
}

/// 1 - the length of the chroma-weighted mean hue vector, on the opponent axes (R - G,
/// (R + G) / 2 - B): 0 for grey images and for images in one tint (false-coloured probes),
/// towards 1 for photographs of many colours.
fn hue_variation(image: &RgbImage) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::level() != crate::cpu::Level::Portable {
        #[target_feature(enable = "avx2")]
        fn avx2(image: &RgbImage) -> f32 {
            hue_variation_loop(image)
        }
        // SAFETY: `cpu::level` above portable means the CPU has AVX2.
        return unsafe { avx2(image) };
    }
    hue_variation_loop(image)
}

/// [`hue_variation`]'s arithmetic, compiled into each instruction set's copy: with AVX2 the
/// lanes' square roots are taken together (`vsqrtpd`, the same values as `sqrtsd` one by
/// one).
#[inline(always)]
fn hue_variation_loop(image: &RgbImage) -> f32 {
    // Twice the opponent coordinates are integers: their sums are kept exact, and the
    // lengths summed in four lanes (pixel k in lane k % 4) so the square roots are not one
    // serial chain. Not `hypot`: the values are small integers (no overflow to guard
    // against), and libm's hypot, per pixel, was 3-4 % of an extraction's time.
    let (mut sx2, mut sy2, mut weight) = (0i64, 0i64, [0f64; 4]);
    let mut add = |lane: usize, [r, g, b]: [u8; 3]| {
        let [r, g, b] = [r, g, b].map(i32::from);
        let (x2, y2) = (2 * (r - g), r + g - 2 * b);
        sx2 += i64::from(x2);
        sy2 += i64::from(y2);
        weight[lane] += f64::from(x2 * x2 + y2 * y2).sqrt() / 2.0;
    };
    let pixels = image.as_raw().chunks_exact(12);
    let rest = pixels.remainder();
    for four in pixels {
        for lane in 0..4 {
            add(
                lane,
                [four[3 * lane], four[3 * lane + 1], four[3 * lane + 2]],
            );
        }
    }
    for (lane, p) in rest.chunks_exact(3).enumerate() {
        add(lane, [p[0], p[1], p[2]]);
    }
    let weight: f64 = weight.iter().sum();
    if weight < 1e-9 {
        return 0.0;
    }
    let (sx, sy) = (sx2 as f64 / 2.0, sy2 as f64 / 2.0);
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
        #[inline(always)]
        fn luminance(rgb: &[u8], px: &mut [u8]) {
            for (v, p) in px.iter_mut().zip(rgb.chunks_exact(3)) {
                let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
                *v = ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8;
            }
        }
        let rgb = image.as_raw();
        let mut px = vec![0u8; rgb.len() / 3];
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::level() != crate::cpu::Level::Portable {
            #[target_feature(enable = "avx2")]
            fn avx2(rgb: &[u8], px: &mut [u8]) {
                luminance(rgb, px)
            }
            // SAFETY: `cpu::level` above portable means the CPU has AVX2.
            unsafe { avx2(rgb, &mut px) };
        } else {
            luminance(rgb, &mut px);
        }
        #[cfg(not(target_arch = "x86_64"))]
        luminance(rgb, &mut px);
        Gray {
            w: image.width() as usize,
            h: image.height() as usize,
            px,
        }
    }
}

/// Otsu's threshold: pixels above it are one class. `None` when there is only one level.
fn otsu(gray: &Gray) -> Option<u8> {
    // Four histograms, a pixel in each in turn, so that runs of equal values (most of an
    // image) do not make every increment wait for the one before.
    let mut counts = [[0u32; 256]; 4];
    let pixels = gray.px.chunks_exact(4);
    for &v in pixels.remainder() {
        counts[0][v as usize] += 1;
    }
    for four in pixels {
        for (counts, &v) in counts.iter_mut().zip(four) {
            counts[v as usize] += 1;
        }
    }
    let hist: [f64; 256] =
        std::array::from_fn(|v| f64::from(counts.iter().map(|c| c[v]).sum::<u32>()));
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
        let border_above = border(gray.w, gray.h)
            .filter(|&(x, y)| above(y * gray.w + x))
            .count();
        let border_len = border(gray.w, gray.h).count();
        let particle_is_above = border_above * 2 < border_len;
        let border_particle = if particle_is_above {
            border_above
        } else {
            border_len - border_above
        };
        let border_background = 1.0 - border_particle as f32 / border_len.max(1) as f32;
        let foreground: Vec<bool> = (gray.px.iter())
            .map(|&v| (v > threshold) == particle_is_above)
            .collect();
        let components = Components::of(gray.w, gray.h, &foreground);
        let sizes = &components.sizes;
        let (largest, &size) = sizes.iter().enumerate().max_by_key(|(_, s)| **s)?;
        let particles = sizes.iter().filter(|&&s| s * 20 >= size && s >= 4).count();
        let particle = components.mask(gray.w, gray.h, largest);
        let filled = fill_holes(gray.w, gray.h, &particle);
        let (mut background_count, mut background_sum) = (0u64, 0u64);
        for (&v, &inside) in gray.px.iter().zip(&filled) {
            let outside = u64::from(!inside);
            background_count += outside;
            background_sum += outside * v as u64;
        }
        let background_mean = if background_count == 0 {
            (if particle_is_above { 0.0 } else { 255.0 }) as f32
        } else {
            background_sum as f32 / background_count as f32
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
        let filled = &self.filled;
        // Sums of coordinates and grey levels are integers, kept exact (they fit a u64 and,
        // for images of at most MEASURE_SIDE pixels a side, an f64's 53 bits).
        let (mut area, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0u64, 0, 0, 0, 0, 0);
        let (mut sum, mut sum2) = (0u64, 0u64);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut cracks = 0usize;
        let mut outline = Vec::new();
        // The hull of the outline pixels' corners is the hull of each row's outermost
        // corners (the others lie on the segments between them): 4 points a row, not 4 a
        // pixel, to sort.
        let mut corners = Vec::new();
        // Four partial sums, so the square roots are not one serial chain of additions.
        let mut gradient = [0f64; 4];
        let mut interior = 0usize;
        let (sum_to, squares_to) = (
            |n: u64| n * n.saturating_sub(1) / 2,
            |n: u64| n * n.saturating_sub(1) * (2 * n).saturating_sub(1) / 6,
        );
        for y in 0..h {
            let row = &filled[y * w..(y + 1) * w];
            let pixels = &gray.px[y * w..(y + 1) * w];
            let filled_at =
                |x: usize, y: Option<usize>| y.is_some_and(|y| y < h && filled[y * w + x]);
            let mut row_span: Option<(usize, usize)> = None;
            // The row goes run by run of particle pixels: coordinate sums in closed form,
            // and only the pixels with a neighbour outside looked at one by one.
            for run in geometry::row_runs(row, true) {
                let (start, end) = (run.start as u64, run.end as u64);
                let len = end - start;
                let yy = y as u64;
                let run_sx = sum_to(end) - sum_to(start);
                area += len;
                sx += run_sx;
                sxx += squares_to(end) - squares_to(start);
                sy += yy * len;
                syy += yy * yy * len;
                sxy += yy * run_sx;
                row_span = Some((row_span.map_or(run.start, |(first, _)| first), run.end - 1));
                for x in run.clone() {
                    let open = usize::from(x == run.start)
                        + usize::from(x + 1 == run.end)
                        + usize::from(!filled_at(x, y.checked_sub(1)))
                        + usize::from(!filled_at(x, Some(y + 1)));
                    if open > 0 {
                        cracks += open;
                        outline.push((x, y));
                    }
                }
                let values = &pixels[run.clone()];
                sum += values.iter().map(|&v| v as u64).sum::<u64>();
                sum2 += values.iter().map(|&v| v as u64 * v as u64).sum::<u64>();
                if y > 0 && y + 1 < h {
                    let (up, down) = (&gray.px[(y - 1) * w..y * w], &gray.px[(y + 1) * w..]);
                    let inner = run.start.max(1)..run.end.min(w - 1);
                    interior += inner.len();
                    for (k, x) in inner.enumerate() {
                        let gx = pixels[x + 1] as i32 - pixels[x - 1] as i32;
                        let gy = down[x] as i32 - up[x] as i32;
                        gradient[k % 4] += ((gx * gx + gy * gy) as f64).sqrt() / 2.0;
                    }
                }
            }
            if let Some((first, last)) = row_span {
                (x0, y0, x1, y1) = (x0.min(first), y0.min(y), x1.max(last), y1.max(y));
                for (cx, cy) in [(first, y), (first, y + 1), (last + 1, y), (last + 1, y + 1)] {
                    corners.push((cx as f64, cy as f64));
                }
            }
        }
        let gradient: f64 = gradient.iter().sum();
        let [sx, sy, sxx, syy, sxy, sum, sum2] =
            [sx, sy, sxx, syy, sxy, sum, sum2].map(|v| v as f64);
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

mod geometry;
#[cfg(test)]
mod tests;
