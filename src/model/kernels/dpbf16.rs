//! The BF16 product ([`super::bf16`]) on vector registers with AVX512-BF16's `vdpbf16ps`:
//! each of its 16 FP32 lanes adds the products of one pair of BF16 values, so with a
//! broadcast pair of activations (input channels `2p, 2p+1`) and a packed weight vector
//! (the pairs of 16 output columns) it does 32 multiply-adds where `vfmadd231ps` does 16.
//! On AMD Zen 4, which has no AMX, that doubles the peak: a register-bound loop ran at 230
//! GFLOP/s per core against 115 for FP32 FMAs.
//!
//! The kernel is [`super::gemm`]'s, on BF16 operands: a tile of up to 12 rows by two
//! strips (32 columns), or 8 rows by three, stays in 24 accumulators while the pairs of
//! input channels run; a leftover of 8 columns is a half strip on 256-bit registers
//! (`column_tiles`).

use super::bf16::{Epilogue, PackedWeights, STRIP};
use super::simd::{self, Level};
use std::arch::x86_64::*;

/// Accumulators of a register tile: with two weight vectors (or three) and a broadcast,
/// 27-28 of the 32 registers, and enough independent sums to cover `vdpbf16ps`'s latency.
const ACCUMULATORS: usize = 24;

/// Rows of a tile `width` registers wide (strips, the half strip counting one): as many as
/// the accumulators allow, at most 12 (a half strip alone would take 24 rows).
const fn tile_rows(width: usize) -> usize {
    let rows = ACCUMULATORS / width;
    if rows < 12 { rows } else { 12 }
}

/// Whether this process can run `vdpbf16ps`: the CPU has AVX512-BF16 (with AVX512-VL, for
/// the 256-bit half strips) and `SNOWSCOPE_KERNELS` does not ask for a lower level.
pub fn available() -> bool {
    simd::level() == Level::Avx512
        && is_x86_feature_detected!("avx512bf16")
        && is_x86_feature_detected!("avx512vl")
}

/// The column tiles of an `n`-column product: `(first column, full strips, half strip)`.
/// Two strips per tile where they divide evenly; what is left joins the last tile as a
/// third strip, or as a half strip of 8 columns on 256-bit registers when at most 8
/// columns are left. A 512-bit register for 8 columns costs as much as for 16 (Zen 4
/// runs it as two 256-bit halves), and a tile of one strip has a broadcast per product.
fn column_tiles(n: usize) -> Vec<(usize, usize, bool)> {
    let full = n / STRIP;
    let rest = n % STRIP;
    // A rest of more than 8 columns takes a whole (masked) strip.
    let (full, half) = match rest {
        0 => (full, false),
        1..=8 => (full, true),
        _ => (full + 1, false),
    };
    let mut tiles: Vec<(usize, usize, bool)> =
        (0..full / 2).map(|t| (t * 2 * STRIP, 2, false)).collect();
    let odd = full % 2 == 1;
    match (tiles.last_mut(), odd, half) {
        (_, false, false) => {}
        (Some(last), true, false) => last.1 = 3,
        (Some(last), false, true) => last.2 = true,
        (_, odd, half) => tiles.push((full / 2 * 2 * STRIP, odd as usize, half)),
    }
    tiles
}

/// `out = epilogue(rows . W)`, from the BF16 `rows` (`w.row_len()` values each).
///
/// # Safety
/// [`available`]; `rows` holds at least `m` rows; `out` is `m x w.n` and the epilogue's
/// slices match it.
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
pub(super) unsafe fn product(
    w: &PackedWeights,
    rows: &[u16],
    m: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
) {
    debug_assert!(rows.len() >= m * w.row_len());
    for (col, strips, half) in column_tiles(w.n) {
        let tile = Tile {
            b: w.values[col / STRIP * w.strip_len()..].as_ptr(),
            strip_len: w.strip_len(),
            stride: w.row_len(),
            pairs: w.k.div_ceil(2),
            col,
            cols: (w.n - col).min(strips * STRIP + half as usize * STRIP / 2),
        };
        for row in (0..m).step_by(tile_rows(strips + half as usize)) {
            let a = rows[row * w.row_len()..].as_ptr();
            // SAFETY: rows row..row + R of `rows` and the tile's strips hold every pair
            // the kernel reads; the epilogue stores rows below m and columns below n.
            unsafe {
                macro_rules! by_rows {
                    ($nv:literal, $h:literal, $($r:literal)*) => {
                        match m - row {
                            $($r => tile.kernel::<$r, $nv, $h>(a, row, epilogue, out),)*
                            _ => tile.kernel::<{ tile_rows($nv + $h as usize) }, $nv, $h>(a, row, epilogue, out),
                        }
                    };
                }
                match (strips, half) {
                    (3, false) => by_rows!(3, false, 1 2 3 4 5 6 7),
                    (2, true) => by_rows!(2, true, 1 2 3 4 5 6 7),
                    (2, false) => by_rows!(2, false, 1 2 3 4 5 6 7 8 9 10 11),
                    (1, true) => by_rows!(1, true, 1 2 3 4 5 6 7 8 9 10 11),
                    (1, false) => by_rows!(1, false, 1 2 3 4 5 6 7 8 9 10 11),
                    _ => by_rows!(0, true, 1 2 3 4 5 6 7 8 9 10 11),
                }
            }
        }
    }
}

/// Output columns `col..col + cols` and their packed weights.
struct Tile {
    /// The first strip; the next follow `strip_len` values apart.
    b: *const u16,
    strip_len: usize,
    /// BF16 values from one activation row to the next.
    stride: usize,
    /// Pairs of input channels that hold weights (the rest are zero padding).
    pairs: usize,
    col: usize,
    cols: usize,
}

impl Tile {
    /// `R x (16 NV [+ 8])` outputs starting at row `row`: accumulate over the pairs, then
    /// the epilogue. `a` is the tile's first BF16 row. With `H`, the strip after the `NV`
    /// full ones is a half strip of 8 columns, on 256-bit registers (its pairs are the
    /// first half of the packed strip).
    #[inline(always)]
    unsafe fn kernel<const R: usize, const NV: usize, const H: bool>(
        &self,
        a: *const u16,
        row: usize,
        epilogue: &Epilogue,
        out: &mut [f32],
    ) {
        // SAFETY (whole body): `a` holds R rows of at least 2 * pairs values, each strip
        // `pairs` vectors of 32 values; the epilogue masks columns to `cols`.
        unsafe {
            let weights = |p: usize| -> [__m512bh; NV] {
                std::array::from_fn(|v| {
                    let at = self.b.add(v * self.strip_len + p * 2 * STRIP);
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(at.cast()))
                })
            };
            let half_weights = |p: usize| -> __m256bh {
                let at = self.b.add(NV * self.strip_len + p * 2 * STRIP);
                std::mem::transmute::<__m256i, __m256bh>(_mm256_loadu_si256(at.cast()))
            };
            let activations = |r: usize, p: usize| -> __m512i {
                let pair = a
                    .add(r * self.stride + 2 * p)
                    .cast::<i32>()
                    .read_unaligned();
                _mm512_set1_epi32(pair)
            };
            let bh = |x: __m512i| std::mem::transmute::<__m512i, __m512bh>(x);
            let bh256 =
                |x: __m512i| std::mem::transmute::<__m256i, __m256bh>(_mm512_castsi512_si256(x));
            // Started from the first pair's products, not a zeroed array: see the FP32
            // kernel (`gemm.rs`) for why. pairs >= 1.
            let b = weights(0);
            let hb = if H {
                half_weights(0)
            } else {
                std::mem::zeroed()
            };
            let mut acc: [[__m512; NV]; R] = std::array::from_fn(|r| {
                let x = activations(r, 0);
                std::array::from_fn(|v| _mm512_dpbf16_ps(_mm512_setzero_ps(), bh(x), b[v]))
            });
            let mut half: [__m256; R] = std::array::from_fn(|r| {
                if H {
                    _mm256_dpbf16_ps(_mm256_setzero_ps(), bh256(activations(r, 0)), hb)
                } else {
                    _mm256_setzero_ps()
                }
            });
            for p in 1..self.pairs {
                let b = weights(p);
                let hb = if H {
                    half_weights(p)
                } else {
                    std::mem::zeroed()
                };
                for r in 0..R {
                    let x = activations(r, p);
                    for v in 0..NV {
                        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], bh(x), b[v]);
                    }
                    if H {
                        half[r] = _mm256_dpbf16_ps(half[r], bh256(x), hb);
                    }
                }
            }
            // The epilogue's options are settled once per tile, not once per vector:
            // branches inside the unrolled stores made the compiler spill the
            // accumulators and finish them in a loop.
            match (epilogue.residual.is_some(), epilogue.relu6) {
                (false, false) => {
                    self.finish::<R, NV, H, false, false>(&acc, &half, row, epilogue, out)
                }
                (false, true) => {
                    self.finish::<R, NV, H, false, true>(&acc, &half, row, epilogue, out)
                }
                (true, false) => {
                    self.finish::<R, NV, H, true, false>(&acc, &half, row, epilogue, out)
                }
                (true, true) => {
                    self.finish::<R, NV, H, true, true>(&acc, &half, row, epilogue, out)
                }
            }
        }
    }

    /// The epilogue of a tile, with its options as constants.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn finish<
        const R: usize,
        const NV: usize,
        const H: bool,
        const RESIDUAL: bool,
        const RELU6: bool,
    >(
        &self,
        acc: &[[__m512; NV]; R],
        half: &[__m256; R],
        row: usize,
        epilogue: &Epilogue,
        out: &mut [f32],
    ) {
        // SAFETY: the caller's; the epilogue masks columns to `cols`.
        unsafe {
            // Index loops, not iterators: a chained iterator here was not unrolled, and
            // the accumulators went through the stack (products 2-3x slower).
            #[allow(clippy::needless_range_loop)]
            for r in 0..R {
                for v in 0..NV + H as usize {
                    let sums = if v < NV {
                        acc[r][v]
                    } else {
                        _mm512_zextps256_ps512(half[r])
                    };
                    let lanes = self.cols.saturating_sub(v * STRIP).min(STRIP);
                    epilogue.store_with::<RESIDUAL, RELU6>(
                        sums,
                        row + r,
                        self.col + v * STRIP,
                        lanes,
                        out,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::column_tiles;

    #[test]
    fn column_tiles_cover_every_column_once_in_wide_tiles() {
        for (n, want) in [
            (16, vec![(0, 1, false)]),
            (24, vec![(0, 1, true)]),
            (32, vec![(0, 2, false)]),
            (40, vec![(0, 2, true)]),
            (80, vec![(0, 2, false), (32, 3, false)]),
            (112, vec![(0, 2, false), (32, 2, false), (64, 3, false)]),
            (12, vec![(0, 1, false)]),
            (8, vec![(0, 0, true)]),
        ] {
            assert_eq!(column_tiles(n), want, "n = {n}");
        }
    }
}
