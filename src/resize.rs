//! The antialiased bilinear ("triangle") resize of an RGB image, as the `image` crate's
//! `imageops::resize(.., FilterType::Triangle)` computes it, value for value, but written
//! for 8-bit RGB only: the crate's generic version reads every tap through `get_pixel`
//! and converts channel by channel, which made it the costliest step of preparing a
//! mid-size JPEG (about a fifth of a whole `rank` of 375-800 px photos, `perf`).
//!
//! Same arithmetic, same order: a vertical pass into `f32` rows, then a horizontal pass
//! rounded to 8 bits; each output value is the sum of its taps in input order, each tap a
//! product then an addition (Rust never fuses them), with the weights computed and
//! normalised as the crate does. So the model's input, and the cached features, do not
//! change (the test below compares every value with the crate's).

use image::RgbImage;

/// The input positions and normalised weights of each output position along one axis.
struct Taps {
    /// First input position of each output position.
    first: Vec<usize>,
    /// `offsets[o]..offsets[o + 1]` are output position `o`'s weights in `weights`.
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    /// The crate's triangle filter (support 1, widened by the ratio when shrinking).
    fn new(input: u32, output: u32) -> Self {
        let ratio = input as f32 / output as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        let support = sratio;
        let mut taps = Taps {
            first: Vec::with_capacity(output as usize),
            offsets: vec![0],
            weights: Vec::new(),
        };
        for o in 0..output {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, i64::from(input) - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, i64::from(input));
            let centre = centre - 0.5;
            let start = taps.weights.len();
            let mut sum = 0.0;
            for i in left..right {
                let x = ((i as f32 - centre) / sratio).abs();
                let w = if x < 1.0 { 1.0 - x } else { 0.0 };
                taps.weights.push(w);
                sum += w;
            }
            for w in &mut taps.weights[start..] {
                *w /= sum;
            }
            taps.first.push(left as usize);
            taps.offsets.push(taps.weights.len());
        }
        taps
    }

    fn of(&self, o: usize) -> (usize, &[f32]) {
        (
            self.first[o],
            &self.weights[self.offsets[o]..self.offsets[o + 1]],
        )
    }
}

/// `image` resized to `width x height` (both at least 1) with the triangle filter.
pub fn triangle(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if (w, h) == (width, height) || w == 0 || h == 0 {
        return image::imageops::resize(
            image,
            width,
            height,
            image::imageops::FilterType::Triangle,
        );
    }
    #[cfg(target_arch = "x86_64")]
    return triangle_at(crate::cpu::level(), image, width, height);
    #[cfg(not(target_arch = "x86_64"))]
    resample(image, width, height)
}

/// The resize compiled for `level`'s vector width, which the CPU must have. Wider vectors
/// give the same values: each is still a product then an addition, in the same order
/// (Rust never fuses them into one rounding), and the rounding to 8 bits, a libm call per
/// value on baseline x86-64, becomes an instruction. With AVX-512 the horizontal pass
/// runs 16 output pixels at a time ([`horizontal_avx512`]).
#[cfg(target_arch = "x86_64")]
fn triangle_at(level: crate::cpu::Level, image: &RgbImage, width: u32, height: u32) -> RgbImage {
    use crate::cpu::Level;

    #[target_feature(enable = "avx512f")]
    fn avx512(image: &RgbImage, width: u32, height: u32) -> RgbImage {
        let rows = vertical(image, height);
        // SAFETY: the CPU has AVX-512F (the caller's level); `rows` holds `height` rows of
        // the image's width.
        unsafe { horizontal_avx512(&rows, image.width(), width, height) }
    }

    #[target_feature(enable = "avx2")]
    fn avx2(image: &RgbImage, width: u32, height: u32) -> RgbImage {
        resample(image, width, height)
    }

    match level {
        // SAFETY: `level` is one the CPU has (`cpu::level` or below).
        Level::Avx512 => unsafe { avx512(image, width, height) },
        // SAFETY: as above.
        Level::Avx2 => unsafe { avx2(image, width, height) },
        Level::Portable => resample(image, width, height),
    }
}

/// Both passes; inlined into each instruction set's copy.
#[inline(always)]
fn resample(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let rows = vertical(image, height);
    horizontal(&rows, image.width(), width, height)
}

/// The vertical pass: `height` rows of the image's width, in f32.
#[inline(always)]
fn vertical(image: &RgbImage, height: u32) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let src = image.as_raw();
    let row = 3 * w as usize;
    let vertical = Taps::new(h, height);
    let mut rows = vec![0f32; height as usize * row];
    for (y, out) in rows.chunks_exact_mut(row).enumerate() {
        let (first, weights) = vertical.of(y);
        let input = &src[first * row..][..weights.len() * row];
        // A few vectors of sums at a time stay in registers over all the taps, rather than
        // the row being read and written back once per tap.
        const CHUNK: usize = 64;
        let whole = row / CHUNK * CHUNK;
        for (c, sums) in out[..whole].chunks_exact_mut(CHUNK).enumerate() {
            let mut t = [0f32; CHUNK];
            for (i, &wt) in weights.iter().enumerate() {
                let pixels: &[u8; CHUNK] = input[i * row + c * CHUNK..][..CHUNK]
                    .try_into()
                    .expect("a chunk");
                for (t, &p) in t.iter_mut().zip(pixels) {
                    *t += f32::from(p) * wt;
                }
            }
            sums.copy_from_slice(&t);
        }
        for (i, &wt) in weights.iter().enumerate() {
            let pixels = &input[i * row + whole..][..row - whole];
            for (t, &p) in out[whole..].iter_mut().zip(pixels) {
                *t += f32::from(p) * wt;
            }
        }
    }
    rows
}

/// The horizontal pass over the `w`-pixel rows of the vertical one, rounded to 8 bits.
#[inline(always)]
fn horizontal(rows: &[f32], w: u32, width: u32, height: u32) -> RgbImage {
    let row = 3 * w as usize;
    let horizontal = Taps::new(w, width);
    let mut out = vec![0u8; 3 * width as usize * height as usize];
    for (line, dst) in rows
        .chunks_exact(row)
        .zip(out.chunks_exact_mut(3 * width as usize))
    {
        for (x, pixel) in dst.chunks_exact_mut(3).enumerate() {
            let (first, weights) = horizontal.of(x);
            let mut t = [0f32; 3];
            for (i, &wt) in weights.iter().enumerate() {
                let p = &line[3 * (first + i)..][..3];
                for c in 0..3 {
                    t[c] += p[c] * wt;
                }
            }
            for c in 0..3 {
                pixel[c] = t[c].clamp(0.0, 255.0).round() as u8;
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// [`horizontal`] for 16 rows at a time, one row per vector lane, so that every tap is a
/// plain vector load where a row-major pass needs a gather per tap (on AMD Zen 4 a 16-lane
/// gather costs about as much as a dozen loads; the gathered version of this pass was half
/// of preparing a 640 x 420 JPEG). The 16 rows are transposed in registers into columns of
/// 16 values; each output value of the 16 rows is then its taps' columns, each times its
/// weight, added in input order: the scalar sums exactly. The rounded bytes are transposed
/// back into the rows.
///
/// # Safety
/// AVX-512F; `rows` holds `height` rows of `3 * w` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn horizontal_avx512(rows: &[f32], w: u32, width: u32, height: u32) -> RgbImage {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let (row, out_row) = (3 * w as usize, 3 * width as usize);
    let taps = Taps::new(w, width);
    let mut out = vec![0u8; out_row * height as usize];
    // Columns of the block: value j of the 16 rows at `columns[16 j..16 j + 16]`, the rows
    // past the image's last (in the last block) zero. Then the block's bytes, the same way.
    let mut columns = vec![0f32; row.next_multiple_of(LANES) * LANES];
    let mut bytes = vec![0u8; out_row * LANES];
    for (block, dst) in out.chunks_mut(out_row * LANES).enumerate() {
        let lanes = dst.len() / out_row;
        let src = &rows[block * LANES * row..][..lanes * row];
        for j in (0..row).step_by(LANES) {
            let count = (row - j).min(LANES);
            // SAFETY: the masked loads read `count` values of rows inside `src`; the rows
            // past `lanes` are zero vectors; `columns` holds 16 vectors from 16 j.
            unsafe {
                let mask = ((1u32 << count) - 1) as u16;
                let mut v: [__m512; LANES] = std::array::from_fn(|r| {
                    if r < lanes {
                        _mm512_maskz_loadu_ps(mask, src[r * row + j..].as_ptr())
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                transpose16(&mut v);
                for (c, column) in v.iter().enumerate().take(count) {
                    _mm512_storeu_ps(columns[(j + c) * LANES..].as_mut_ptr(), *column);
                }
            }
        }
        for x in 0..width as usize {
            let (first, weights) = taps.of(x);
            for c in 0..3 {
                // SAFETY: every tap's column lies in the row, so inside `columns`; the 16
                // bytes go to `bytes`' column 3 x + c.
                unsafe {
                    let mut t = _mm512_setzero_ps();
                    for (i, &wt) in weights.iter().enumerate() {
                        let p = _mm512_loadu_ps(columns[(3 * (first + i) + c) * LANES..].as_ptr());
                        t = _mm512_add_ps(t, _mm512_mul_ps(p, _mm512_set1_ps(wt)));
                    }
                    let t =
                        _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.0));
                    // `f32::round` rounds halves away from zero: the whole part, plus one
                    // where the fraction (exact: both parts share the value's exponent) is
                    // a half or more.
                    let whole =
                        _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(t);
                    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(
                        _mm512_sub_ps(t, whole),
                        _mm512_set1_ps(0.5),
                    );
                    let rounded = _mm512_mask_add_ps(whole, up, whole, _mm512_set1_ps(1.0));
                    let packed = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(rounded));
                    _mm_storeu_si128(bytes[(3 * x + c) * LANES..].as_mut_ptr().cast(), packed);
                }
            }
        }
        for (r, line) in dst.chunks_exact_mut(out_row).enumerate() {
            for (k, value) in line.iter_mut().enumerate() {
                *value = bytes[k * LANES + r];
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// Transposes 16 vectors of 16 values in registers: afterwards `v[c]` lane `r` is what
/// `v[r]` lane `c` was. Four rounds, each exchanging ever larger blocks between pairs of
/// vectors: single values, pairs, groups of four, groups of eight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(v: &mut [std::arch::x86_64::__m512; 16]) {
    use std::arch::x86_64::*;
    // Values: rows 2i, 2i+1 interleaved within each 128-bit lane.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (v[i / 2 * 2], v[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // Pairs: rows 4i..4i+4 in order within each 128-bit lane.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let base = i / 4 * 4 + i % 4 / 2;
        let (a, b) = (_mm512_castps_pd(t[base]), _mm512_castps_pd(t[base + 2]));
        _mm512_castpd_ps(if i % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        })
    });
    // Groups of four, then of eight: whole 128-bit lanes between vectors.
    let q: [__m512; 16] = std::array::from_fn(|i| {
        let base = i / 8 * 8 + i % 4;
        let (a, b) = (u[base], u[base + 4]);
        if i % 8 < 4 {
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b)
        }
    });
    *v = std::array::from_fn(|i| {
        let base = i % 8;
        let (a, b) = (q[base], q[base + 8]);
        if i < 8 {
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every value equals the `image` crate's, shrinking and enlarging, on noise (where any
    /// difference in weights or order would show).
    #[test]
    fn equals_the_image_crates_triangle_resize() {
        let mut rng = Rng::new(5);
        for &(w, h, nw, nh) in &[
            (400, 300, 224, 224),
            (800, 533, 224, 224),
            (225, 1000, 224, 224),
            (100, 80, 224, 224),
            (1, 1, 224, 224),
            (640, 480, 320, 240),
            // Rows in blocks of 16 with a partial last block, as the traits see a photo.
            (640, 420, 320, 210),
            (7, 3, 2, 5),
        ] {
            let image = RgbImage::from_fn(w, h, |_, _| {
                image::Rgb([0, 0, 0].map(|_: u8| (rng.f32() * 256.0) as u8))
            });
            let want =
                image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle);
            let mut results = vec![("best", triangle(&image, nw, nh))];
            // Each instruction set this CPU has, whichever `triangle` picked.
            #[cfg(target_arch = "x86_64")]
            {
                use crate::cpu::Level;
                if is_x86_feature_detected!("avx512f") {
                    results.push(("avx512", triangle_at(Level::Avx512, &image, nw, nh)));
                }
                if is_x86_feature_detected!("avx2") {
                    results.push(("avx2", triangle_at(Level::Avx2, &image, nw, nh)));
                }
                results.push(("portable", triangle_at(Level::Portable, &image, nw, nh)));
            }
            for (level, got) in results {
                assert_eq!(got.dimensions(), want.dimensions());
                let differing = got
                    .as_raw()
                    .iter()
                    .zip(want.as_raw())
                    .filter(|(a, b)| a != b)
                    .count();
                assert_eq!(differing, 0, "{level}: {w}x{h} -> {nw}x{nh}");
            }
        }
    }
}
