//! 1x1 convolution on a channels-last (HWC) map as one matrix product,
//! `out[m, n] = act(sum_k a[m, k] w[k, n] + bias[n] (+ residual[m, n]))`,
//! with the weights packed once at load and bias, residual and ReLU6 fused into the store.
//!
//! The AVX-512 path is a register-blocked kernel in the style of BLIS/GotoBLAS: a tile of
//! `MR` rows by two 16-lane vectors of columns stays in 24 of the 32 vector registers while
//! `k` runs, so every loaded weight vector feeds `MR` multiply-adds. The rows of `a` are
//! read in place: packing them (as BLIS does) cost more than it saved, since each row block
//! meets few weight panels here (measured with `cargo bench --bench kernels`).

/// Columns per packed weight panel: two 16-lane vectors.
pub const NR: usize = 32;
/// Rows per register tile.
const MR: usize = 12;

/// Weights of a 1x1 convolution (or of an im2col'd convolution), packed into panels of
/// `NR` output channels, each `k x NR` and zero-padded.
pub struct PackedConv {
    k: usize,
    n: usize,
    panels: Vec<f32>,
    /// Padded to a whole number of panels.
    bias: Vec<f32>,
    relu6: bool,
}

impl PackedConv {
    /// From PyTorch's `(n, k)` row-major weight (output channels first).
    pub fn new(weight: &[f32], bias: &[f32], k: usize, relu6: bool) -> Self {
        let n = bias.len();
        assert_eq!(weight.len(), n * k, "weight is n x k");
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0f32; panel_count * k * NR];
        for (col, w_row) in weight.chunks_exact(k).enumerate() {
            let (panel, lane) = (col / NR, col % NR);
            for (kk, &w) in w_row.iter().enumerate() {
                panels[(panel * k + kk) * NR + lane] = w;
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(panel_count * NR, 0.0);
        Self {
            k,
            n,
            panels,
            bias: padded_bias,
            relu6,
        }
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    /// `out (m x n) = act(a (m x k) . W + bias [+ residual (m x n)])`.
    pub fn apply(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
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

    /// The same product with plain loops, for CPUs without AVX-512 (and as the reference
    /// the fast path is tested against).
    pub fn apply_portable(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        for row in 0..m {
            let o = &mut out[row * n..(row + 1) * n];
            match residual {
                Some(r) => o
                    .iter_mut()
                    .zip(&r[row * n..(row + 1) * n])
                    .zip(&self.bias)
                    .for_each(|((o, r), b)| *o = r + b),
                None => o.copy_from_slice(&self.bias[..n]),
            }
            for (panel, chunk) in o.chunks_mut(NR).enumerate() {
                let w = &self.panels[panel * k * NR..(panel + 1) * k * NR];
                for (kk, &x) in a[row * k..(row + 1) * k].iter().enumerate() {
                    let w_row = &w[kk * NR..kk * NR + chunk.len()];
                    chunk.iter_mut().zip(w_row).for_each(|(o, w)| *o += x * w);
                }
            }
            if self.relu6 {
                super::relu6(o);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        for panel in 0..n.div_ceil(NR) {
            let cols = (n - panel * NR).min(NR);
            let tile = Tile {
                b: self.panels[panel * k * NR..].as_ptr(),
                k,
                bias: self.bias[panel * NR..].as_ptr(),
                ldc: n,
                cols,
                relu6: self.relu6,
            };
            for block in 0..m.div_ceil(MR) {
                let rows = (m - block * MR).min(MR);
                let offset = block * MR * n + panel * NR;
                let a = a[block * MR * k..].as_ptr();
                let res = residual.map_or(std::ptr::null(), |r| r[offset..].as_ptr());
                let c = out[offset..].as_mut_ptr();
                // SAFETY: rows block*MR.. of `a` hold rows x k values; the output and
                // residual tiles (rows x cols at stride n) lie inside their m x n slices.
                unsafe { tile.run(rows, a, res, c) };
            }
        }
    }
}

/// One weight panel and how its tiles are stored.
#[cfg(target_arch = "x86_64")]
struct Tile {
    b: *const f32,
    k: usize,
    bias: *const f32,
    ldc: usize,
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

    /// `R x (16 NV)` tile: accumulate over k, then bias, residual, ReLU6 and a masked store.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel<const R: usize, const NV: usize>(
        &self,
        a: *const f32,
        res: *const f32,
        c: *mut f32,
    ) {
        use std::arch::x86_64::*;
        // SAFETY (whole body): `a` holds R x k values, `b` k x NR, `bias` NR; output and
        // residual rows hold `cols` values at stride ldc, and only those lanes are touched.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; R];
            for kk in 0..self.k {
                let b: [__m512; NV] =
                    std::array::from_fn(|v| _mm512_loadu_ps(self.b.add(kk * NR + 16 * v)));
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.add(r * self.k + kk));
                    for v in 0..NV {
                        acc_row[v] = _mm512_fmadd_ps(x, b[v], acc_row[v]);
                    }
                }
            }
            let masks: [__mmask16; NV] = std::array::from_fn(|v| {
                let lanes = self.cols.saturating_sub(16 * v).min(16);
                ((1u32 << lanes) - 1) as __mmask16
            });
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (r, acc_row) in acc.iter().enumerate() {
                for v in 0..NV {
                    let mut y = _mm512_add_ps(acc_row[v], _mm512_loadu_ps(self.bias.add(16 * v)));
                    let at = r * self.ldc + 16 * v;
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
    /// against a naive triple loop.
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
                let conv = PackedConv::new(&w, &bias, k, relu6);
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
