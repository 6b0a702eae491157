//! 1x1 convolution on a channels-last (HWC) map as one matrix product,
//! `out[m, n] = act(sum_k a[m, k] w[k, n] + bias[n] (+ residual[m, n]))`,
//! with bias, residual and ReLU6 fused into the store.
//!
//! The AVX-512 path is a register-blocked kernel in the style of BLIS/GotoBLAS: a tile of
//! up to `MR` rows by two 16-lane vectors of columns stays in 24 of the 32 vector registers
//! while `k` runs, so every loaded weight vector feeds `MR` multiply-adds. Neither operand
//! is packed: the maps and weights here are small enough that the copies cost more than
//! they save (measured with `cargo bench --bench kernels`). Without AVX-512 the product
//! goes to the `gemm` crate, which picks AVX2/FMA kernels at run time.

use crate::linalg::{Rhs, matmul};

/// Columns per register tile: two 16-lane vectors.
const NR: usize = 32;
/// Rows per register tile.
const MR: usize = 12;

/// A 1x1 convolution (or an im2col'd dense one) with its folded batch-norm bias.
pub struct PointwiseConv {
    /// `k x n`, row-major (input channels first, so a tile's weights are row segments).
    weight: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    relu6: bool,
}

impl PointwiseConv {
    /// From PyTorch's `(n, k)` row-major weight (output channels first).
    pub fn new(weight: &[f32], bias: &[f32], k: usize, relu6: bool) -> Self {
        let n = bias.len();
        assert_eq!(weight.len(), n * k, "weight is n x k");
        let mut transposed = vec![0f32; k * n];
        for (col, w_row) in weight.chunks_exact(k).enumerate() {
            for (kk, &w) in w_row.iter().enumerate() {
                transposed[kk * n + col] = w;
            }
        }
        Self {
            weight: transposed,
            bias: bias.to_vec(),
            k,
            relu6,
        }
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    pub fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `out (m x n) = act(a (m x k) . W + bias [+ residual (m x n)])`.
    pub fn apply(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.outputs());
        assert_eq!(a.len(), m * k, "input is m x k");
        assert_eq!(out.len(), m * n, "output is m x n");
        if let Some(r) = residual {
            assert_eq!(r.len(), m * n, "residual is m x n");
        }
        #[cfg(target_arch = "x86_64")]
        if super::has_avx512() {
            // SAFETY: AVX-512F is present; the asserts above bound every row and column
            // the tiles touch.
            unsafe { self.apply_avx512(a, m, residual, out) };
            return;
        }
        self.apply_portable(a, m, residual, out);
    }

    /// The same product through the `gemm` crate: start from bias (+ residual), accumulate
    /// the product onto it, then clamp.
    pub fn apply_portable(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let n = self.outputs();
        for (row, o) in out.chunks_exact_mut(n).enumerate() {
            match residual {
                Some(r) => o
                    .iter_mut()
                    .zip(&r[row * n..(row + 1) * n])
                    .zip(&self.bias)
                    .for_each(|((o, r), b)| *o = r + b),
                None => o.copy_from_slice(&self.bias),
            }
        }
        matmul(out, a, &self.weight, Rhs::Plain, m, n, self.k, true, 1);
        if self.relu6 {
            super::relu6(out);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.outputs());
        for col in (0..n).step_by(NR) {
            let tile = Tile {
                b: self.weight[col..].as_ptr(),
                k,
                ld: n,
                bias: self.bias[col..].as_ptr(),
                cols: (n - col).min(NR),
                relu6: self.relu6,
            };
            for row in (0..m).step_by(MR) {
                let rows = (m - row).min(MR);
                let offset = row * n + col;
                let res = residual.map_or(std::ptr::null(), |r| r[offset..].as_ptr());
                // SAFETY: rows row..row+rows of `a` hold k values each; the weight, output
                // and residual tiles (k or rows x cols at stride n) lie inside their slices.
                unsafe { tile.run(rows, a[row * k..].as_ptr(), res, out[offset..].as_mut_ptr()) };
            }
        }
    }
}

/// The columns `col..col + cols` of the weights, and how their tiles are stored.
#[cfg(target_arch = "x86_64")]
struct Tile {
    b: *const f32,
    k: usize,
    /// Row stride of weights, output and residual (n).
    ld: usize,
    bias: *const f32,
    cols: usize,
    relu6: bool,
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// Dispatches to the kernel compiled for this many rows and vectors of columns.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, rows: usize, a: *const f32, res: *const f32, c: *mut f32) {
        macro_rules! by_rows {
            ($nv:literal) => {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match rows {
                        12 => self.kernel::<12, $nv>(a, res, c),
                        11 => self.kernel::<11, $nv>(a, res, c),
                        10 => self.kernel::<10, $nv>(a, res, c),
                        9 => self.kernel::<9, $nv>(a, res, c),
                        8 => self.kernel::<8, $nv>(a, res, c),
                        7 => self.kernel::<7, $nv>(a, res, c),
                        6 => self.kernel::<6, $nv>(a, res, c),
                        5 => self.kernel::<5, $nv>(a, res, c),
                        4 => self.kernel::<4, $nv>(a, res, c),
                        3 => self.kernel::<3, $nv>(a, res, c),
                        2 => self.kernel::<2, $nv>(a, res, c),
                        _ => self.kernel::<1, $nv>(a, res, c),
                    }
                }
            };
        }
        if self.cols > 16 {
            by_rows!(2)
        } else {
            by_rows!(1)
        }
    }

    /// `R x (16 NV)` tile: accumulate over k, then bias, residual, ReLU6 and a store, all
    /// masked to the tile's `cols` columns.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel<const R: usize, const NV: usize>(
        &self,
        a: *const f32,
        res: *const f32,
        c: *mut f32,
    ) {
        use std::arch::x86_64::*;
        let masks: [__mmask16; NV] = std::array::from_fn(|v| {
            let lanes = self.cols.saturating_sub(16 * v).min(16);
            ((1u32 << lanes) - 1) as __mmask16
        });
        // SAFETY (whole body): `a` holds R rows of k values, `b` k rows of `cols` values at
        // stride ld, `bias` cols values; output and residual rows hold `cols` values at
        // stride ld. Every access beyond `cols` is masked off (and masked lanes are not
        // accessed).
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; R];
            for kk in 0..self.k {
                let b_row = self.b.add(kk * self.ld);
                let b: [__m512; NV] =
                    std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], b_row.add(16 * v)));
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.add(r * self.k + kk));
                    for v in 0..NV {
                        acc_row[v] = _mm512_fmadd_ps(x, b[v], acc_row[v]);
                    }
                }
            }
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (r, acc_row) in acc.iter().enumerate() {
                for v in 0..NV {
                    let bias = _mm512_maskz_loadu_ps(masks[v], self.bias.add(16 * v));
                    let mut y = _mm512_add_ps(acc_row[v], bias);
                    let at = r * self.ld + 16 * v;
                    if !res.is_null() {
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(masks[v], res.add(at)));
                    }
                    if self.relu6 {
                        y = _mm512_min_ps(_mm512_max_ps(y, zero), six);
                    }
                    _mm512_mask_storeu_ps(c.add(at), masks[v], y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.f32() * 4.0 - 2.0).collect()
    }

    /// Every tile shape (row tails 1..12, one or two column vectors, partial vectors)
    /// against a naive triple loop, on both paths.
    #[test]
    fn matches_naive_product_for_every_tile_shape() {
        let mut rng = Rng::new(7);
        for &(m, k, n) in &[
            (1, 1, 1),
            (13, 5, 24),
            (49, 17, 40),
            (25, 3, 33),
            (12, 8, 16),
        ] {
            let a = random(&mut rng, m * k);
            let w = random(&mut rng, n * k);
            let bias = random(&mut rng, n);
            let residual = random(&mut rng, m * n);
            for (relu6, res) in [(false, None), (true, Some(&residual[..]))] {
                let conv = PointwiseConv::new(&w, &bias, k, relu6);
                let mut naive = vec![0f32; m * n];
                for row in 0..m {
                    for col in 0..n {
                        let mut s = bias[col] + res.map_or(0.0, |r| r[row * n + col]);
                        for kk in 0..k {
                            s += a[row * k + kk] * w[col * k + kk];
                        }
                        naive[row * n + col] = if relu6 { s.clamp(0.0, 6.0) } else { s };
                    }
                }
                let mut fast = vec![f32::NAN; m * n];
                conv.apply(&a, m, res, &mut fast);
                let mut portable = vec![f32::NAN; m * n];
                conv.apply_portable(&a, m, res, &mut portable);
                for (got, want) in [(&fast, &naive), (&portable, &naive)] {
                    let err = got
                        .iter()
                        .zip(want.iter())
                        .map(|(g, w)| (g - w).abs())
                        .fold(0f32, f32::max);
                    assert!(err < 1e-4, "m={m} k={k} n={n}: max error {err}");
                }
            }
        }
    }
}
