//! Turn grown crystals into something that looks like a dark-field
//! photomicrograph of a snow crystal.
//!
//! The lattice is sampled with barycentric interpolation on its triangles at
//! twice the output resolution, shaded from three fields (ice coverage,
//! thickness, arm ridges), then box-downscaled, defocused, vignetted and given
//! sensor noise. Ice that froze early has had longest to thicken (Reiter's
//! receptive cells keep gaining gamma), so the centre and the arm spines are
//! brightest, as in real plates.

use image::{Rgb, RgbImage};
use serde::Serialize;

use super::morphology::{Layer, Specimen};
use super::reiter::{Crystal, NEIGHBOURS};
use crate::rng::Rng;

/// Mean 8-bit level above which pixels count as lit ice for shot noise
/// (the brightest background gradient stays below it).
const BACKGROUND_LEVEL: f64 = 45.0;

/// Supersampling factor before the box downscale.
const SUPER: usize = 2;

/// The camera and lighting of one photograph, independent of the crystal.
#[derive(Debug, Clone, Serialize)]
pub struct Look {
    /// Scene rotation (radians).
    pub rotation: f64,
    /// Scene scale factor applied to every layer.
    pub scale: f64,
    /// Scene centre offset (fractions of the image size).
    pub shift: (f64, f64),
    /// Background colour at the dark and the light end of the gradient.
    pub bg_dark: [f64; 3],
    pub bg_light: [f64; 3],
    /// Direction of the background gradient (radians).
    pub bg_angle: f64,
    /// Colour of the illuminated ice.
    pub ice: [f64; 3],
    /// Gaussian defocus sigma in output pixels.
    pub blur: f64,
    /// Shot-noise scale: sigma in 8-bit levels on the brightest ice.
    pub noise: f64,
    /// Darkening at the corners (0 = none).
    pub vignette: f64,
    pub noise_seed: u64,
}

impl Look {
    pub fn random(rng: &mut Rng) -> Self {
        // A faint tint shared by the background and the light: blue-black
        // with a drift towards teal or violet, as with coloured illumination.
        let tint = [rng.range(-0.25, 0.15), rng.range(-0.1, 0.25), 0.0];
        let dark = [6.0, 10.0, 22.0];
        let light = [20.0, 34.0, 64.0];
        let shade =
            |c: [f64; 3], k: f64| [c[0] * (1.0 + tint[0] * k), c[1] * (1.0 + tint[1] * k), c[2]];
        Self {
            rotation: rng.range(0.0, std::f64::consts::TAU),
            scale: rng.range(0.9, 1.08),
            shift: (rng.range(-0.05, 0.05), rng.range(-0.05, 0.05)),
            bg_dark: shade(dark, 1.0),
            bg_light: shade(light, rng.range(0.5, 1.5)),
            bg_angle: rng.range(0.0, std::f64::consts::TAU),
            ice: [rng.range(165.0, 185.0), rng.range(185.0, 200.0), 210.0],
            blur: rng.range(0.55, 0.85),
            noise: rng.range(1.0, 1.8),
            vignette: rng.range(0.2, 0.4),
            noise_seed: rng.next_u64(),
        }
    }

    /// The same crystal photographed again: a slightly different pose and
    /// fresh noise, close enough to count as a near duplicate.
    pub fn nudged(&self, rng: &mut Rng) -> Self {
        Self {
            rotation: self.rotation + rng.range(-0.04, 0.04),
            scale: self.scale * rng.range(0.97, 1.03),
            shift: (
                self.shift.0 + rng.range(-0.015, 0.015),
                self.shift.1 + rng.range(-0.015, 0.015),
            ),
            blur: (self.blur + rng.range(-0.1, 0.1)).max(0.3),
            noise_seed: rng.next_u64(),
            ..self.clone()
        }
    }
}

/// Per-pixel planes at the supersampled resolution.
struct Planes {
    n: usize,
    cover: Vec<f32>,
    thick: Vec<f32>,
    ridge: Vec<f32>,
}

/// Per-cell values the sampler interpolates.
struct CellFields<'a> {
    crystal: &'a Crystal,
    ice: Vec<f32>,
    thick: Vec<f32>,
}

impl<'a> CellFields<'a> {
    fn new(crystal: &'a Crystal) -> Self {
        let steps = crystal.steps.max(1) as f32;
        let ice = crystal
            .frozen_at
            .iter()
            .map(|&t| if t == u32::MAX { 0.0 } else { 1.0 })
            .collect();
        // Age since freezing, compressed so young tips are still visible.
        let thick = crystal
            .frozen_at
            .iter()
            .map(|&t| {
                if t == u32::MAX {
                    0.0
                } else {
                    (1.0 - t as f32 / steps).powf(0.7)
                }
            })
            .collect();
        let thick = smooth_on_ice(crystal, thick, 2);
        Self {
            crystal,
            ice,
            thick,
        }
    }

    /// Barycentric interpolation at lattice position (x, y) in cell units.
    fn sample(&self, x: f64, y: f64) -> (f32, f32) {
        let r = y / (3f64.sqrt() / 2.0);
        let q = x - 0.5 * r;
        let (q0, r0) = (q.floor(), r.floor());
        let (fq, fr) = ((q - q0) as f32, (r - r0) as f32);
        let (q0, r0) = (q0 as i32, r0 as i32);
        // Each rhombus of the axial grid splits into two equilateral triangles.
        let corners = if fq + fr < 1.0 {
            [
                ((q0, r0), 1.0 - fq - fr),
                ((q0 + 1, r0), fq),
                ((q0, r0 + 1), fr),
            ]
        } else {
            [
                ((q0 + 1, r0 + 1), fq + fr - 1.0),
                ((q0 + 1, r0), 1.0 - fr),
                ((q0, r0 + 1), 1.0 - fq),
            ]
        };
        corners
            .iter()
            .fold((0.0, 0.0), |(ice, th), &((cq, cr), w)| {
                match self.crystal.index(cq, cr) {
                    Some(i) => (ice + w * self.ice[i], th + w * self.thick[i]),
                    None => (ice, th),
                }
            })
    }
}

/// Average the thickness over ice neighbours a few times: freezing times
/// jitter from cell to cell, and real ice is smooth at this scale (which
/// also keeps the PNGs small).
fn smooth_on_ice(c: &Crystal, mut field: Vec<f32>, passes: usize) -> Vec<f32> {
    let w = c.width() as isize;
    let offsets = NEIGHBOURS.map(|(dq, dr)| dq as isize + dr as isize * w);
    for _ in 0..passes {
        let prev = field.clone();
        for i in 0..field.len() {
            if !c.is_ice(i) {
                continue;
            }
            let (mut sum, mut n) = (prev[i] * 2.0, 2.0);
            for &o in &offsets {
                let j = i as isize + o;
                if j >= 0 && (j as usize) < prev.len() && c.is_ice(j as usize) {
                    sum += prev[j as usize];
                    n += 1.0;
                }
            }
            field[i] = sum / n;
        }
    }
    field
}

/// Render one picture of `spec` (whose crystals are `crystals`) at `size` px.
pub fn render(crystals: &[Crystal], spec: &Specimen, look: &Look, size: u32) -> RgbImage {
    let n = size as usize * SUPER;
    let mut planes = Planes {
        n,
        cover: vec![0.0; n * n],
        thick: vec![0.0; n * n],
        ridge: vec![0.0; n * n],
    };
    let fields: Vec<CellFields> = crystals.iter().map(CellFields::new).collect();
    for layer in &spec.layers {
        rasterize(&fields[layer.crystal], layer, look, &mut planes);
    }
    let lum = shade(&planes);
    let mut rgb = compose(&lum, &planes.cover, look, n);
    rgb = downscale(&rgb, n, SUPER);
    let m = size as usize;
    for c in rgb.chunks_mut(m * m) {
        gaussian_blur(c, m, look.blur);
    }
    finish(&rgb, m, look)
}

/// Draw one layer's coverage, thickness and ridges into the planes.
fn rasterize(cells: &CellFields, layer: &Layer, look: &Look, planes: &mut Planes) {
    let n = planes.n as f64;
    let c = cells.crystal;
    // Output pixels per lattice cell for this layer.
    let ppc = layer.radius_frac * look.scale * n / c.extent.max(1.0);
    let (ls, lc) = look.rotation.sin_cos();
    let (ox, oy) = layer.offset;
    let cx = n * (0.5 + look.shift.0 + ox * lc - oy * ls);
    let cy = n * (0.5 + look.shift.1 + ox * ls + oy * lc);
    let (sin, cos) = (look.rotation + layer.rotation).sin_cos();
    let (sx, sy) = (layer.stretch, 1.0 / layer.stretch.sqrt());
    let reach = (c.extent + 2.0) * ppc * sx.max(sy);
    // Ridge half-width: about one output pixel, but never under 0.6 cells.
    let width = (2.0 / ppc).max(0.6);
    for py in 0..planes.n {
        let dy = py as f64 + 0.5 - cy;
        if dy.abs() > reach {
            continue;
        }
        for px in 0..planes.n {
            let dx = px as f64 + 0.5 - cx;
            if dx.abs() > reach {
                continue;
            }
            // Undo rotation, stretch and scale to reach lattice coordinates.
            let x = (cos * dx + sin * dy) / (ppc * sx);
            let y = (-sin * dx + cos * dy) / (ppc * sy);
            let (ice, thick) = cells.sample(x, y);
            if ice <= 0.0 {
                continue;
            }
            let i = py * planes.n + px;
            let cover = smooth_edge(ice);
            // Overlapping crystals (twins, aggregates) transmit less light.
            planes.cover[i] = 1.0 - (1.0 - planes.cover[i]) * (1.0 - cover);
            planes.thick[i] = planes.thick[i].max(thick / ice.max(1e-3) * cover)
                + 0.25 * planes.thick[i].min(thick);
            planes.ridge[i] = planes.ridge[i].max(cover * arm_ridge(x, y, width, c.extent));
        }
    }
}

/// Sharpen the interpolated 0/1 ice indicator into an anti-aliased edge.
fn smooth_edge(ice: f32) -> f32 {
    let t = ((ice - 0.3) / 0.4).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Ridge along the nearest of the six arm axes (the lattice directions the
/// tips grow along), strongest near the centre like real arm spines.
fn arm_ridge(x: f64, y: f64, width: f64, extent: f64) -> f32 {
    let r = x.hypot(y);
    let sector = std::f64::consts::FRAC_PI_3;
    let a = y.atan2(x).rem_euclid(sector);
    let off_axis = a.min(sector - a);
    let d = r * off_axis.sin();
    let fade = (1.0 - 0.6 * r / extent.max(1.0)).max(0.0);
    ((-(d / width).powi(2)).exp() * fade) as f32
}

/// Luminance of the ice: translucent body, bright rims at every edge,
/// faint growth-ring lines where the thickness steps, and arm spines.
fn shade(p: &Planes) -> Vec<f32> {
    let n = p.n;
    let mut lum = vec![0.0f32; n * n];
    for y in 1..n - 1 {
        for x in 1..n - 1 {
            let i = y * n + x;
            if p.cover[i] <= 0.0
                && p.cover[i - 1] <= 0.0
                && p.cover[i + 1] <= 0.0
                && p.cover[i - n] <= 0.0
                && p.cover[i + n] <= 0.0
            {
                continue;
            }
            let grad = |f: &[f32]| {
                ((f[i + 1] - f[i - 1]).powi(2) + (f[i + n] - f[i - n]).powi(2)).sqrt() * 0.5
            };
            let rim = (grad(&p.cover) * 1.6).min(1.0);
            let tg = grad(&p.thick);
            // Contour lines of thickness: earlier outlines of the crystal.
            let levels = 5.0;
            let frac = (p.thick[i] * levels).fract();
            let dist_px = frac.min(1.0 - frac) / (tg * levels).max(1e-4);
            let ring = (-(dist_px / 0.8).powi(2)).exp() * p.cover[i] * (tg * 40.0).min(1.0);
            let body = p.cover[i] * (0.22 + 0.5 * p.thick[i]);
            lum[i] = body + 0.55 * rim + 0.18 * ring + 0.35 * p.ridge[i];
        }
    }
    lum
}

/// Background gradient plus the lit ice, as three planar channels.
fn compose(lum: &[f32], cover: &[f32], look: &Look, n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; 3 * n * n];
    let (ds, dc) = look.bg_angle.sin_cos();
    for y in 0..n {
        for x in 0..n {
            let i = y * n + x;
            let u = ((x as f64 / n as f64 - 0.5) * dc + (y as f64 / n as f64 - 0.5) * ds + 0.5)
                .clamp(0.0, 1.0);
            for ch in 0..3 {
                let bg = look.bg_dark[ch] + (look.bg_light[ch] - look.bg_dark[ch]) * u;
                // Ice scatters light into the objective and hides a little background.
                let v = bg * (1.0 - 0.3 * cover[i] as f64) + look.ice[ch] * lum[i].min(1.3) as f64;
                out[ch * n * n + i] = v as f32;
            }
        }
    }
    out
}

/// Box-average `f` x `f` blocks of planar channels.
fn downscale(src: &[f32], n: usize, f: usize) -> Vec<f32> {
    let m = n / f;
    let channels = src.len() / (n * n);
    let mut out = vec![0.0f32; channels * m * m];
    let norm = 1.0 / (f * f) as f32;
    for ch in 0..channels {
        for y in 0..m {
            for x in 0..m {
                let mut acc = 0.0;
                for dy in 0..f {
                    let row = ch * n * n + (y * f + dy) * n + x * f;
                    acc += src[row..row + f].iter().sum::<f32>();
                }
                out[ch * m * m + y * m + x] = acc * norm;
            }
        }
    }
    out
}

/// Separable gaussian blur of one m x m plane, clamping at the borders.
fn gaussian_blur(plane: &mut [f32], m: usize, sigma: f64) {
    let r = (sigma * 3.0).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let at = |v: isize| v.clamp(0, m as isize - 1) as usize;
    let mut tmp = vec![0.0f32; m * m];
    for y in 0..m {
        for x in 0..m {
            tmp[y * m + x] = (-r..=r)
                .map(|k| kernel[(k + r) as usize] * plane[y * m + at(x as isize + k)])
                .sum();
        }
    }
    for y in 0..m {
        for x in 0..m {
            plane[y * m + x] = (-r..=r)
                .map(|k| kernel[(k + r) as usize] * tmp[at(y as isize + k) * m + x])
                .sum();
        }
    }
}

/// Vignetting and sensor noise, then quantise to 8-bit RGB.
fn finish(rgb: &[f32], m: usize, look: &Look) -> RgbImage {
    let mut rng = Rng::new(look.noise_seed);
    let mut img = RgbImage::new(m as u32, m as u32);
    let half = m as f64 / 2.0;
    for y in 0..m {
        for x in 0..m {
            let i = y * m + x;
            let r2 = ((x as f64 + 0.5 - half).powi(2) + (y as f64 + 0.5 - half).powi(2))
                / (2.0 * half * half);
            let vig = 1.0 - look.vignette * r2;
            let value = [0, 1, 2].map(|ch| rgb[ch * m * m + i] as f64 * vig);
            // Photon shot noise grows with the square root of the light above
            // the dark background; read noise on the background is below one
            // level at low ISO and rounds away (which also keeps the flat
            // background cheap to store).
            let light = ((value.iter().sum::<f64>() / 3.0 - BACKGROUND_LEVEL) / 200.0).max(0.0);
            let noise = rng.normal() * look.noise * light.sqrt();
            let px = value.map(|v| (v + noise).round().clamp(0.0, 255.0) as u8);
            img.put_pixel(x as u32, y as u32, Rgb(px));
        }
    }
    img
}
