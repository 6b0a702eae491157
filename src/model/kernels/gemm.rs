//! 1x1 convolution on a channels-last (HWC) map as one matrix product,
//! `out[m, n] = act(sum_k a[m, k] w[k, n] + bias[n] (+ residual[m, n]))`,
//! with bias, residual and ReLU6 fused into the store.
//!
//! On x86-64 it is a register-blocked kernel in the style of BLIS/GotoBLAS, written once
//! against [`Isa`] and compiled for AVX-512 and for AVX2: a tile of up to `MR` rows by two
//! vectors of columns stays in registers while `k` runs, so every loaded weight vector
//! feeds `MR` multiply-adds. Neither operand is packed: the maps and weights here are small
//! enough that the copies cost more than they save (measured with `cargo bench --bench
//! kernels`). Elsewhere the product goes to the `gemm` crate.

#[cfg(target_arch = "x86_64")]
use super::simd::{self, Avx2, Avx512, Isa, Level};
use crate::linalg::{Rhs, matmul};

/// A 1x1 convolution (or an im2col'd dense one) with its folded batch-norm bias.
pub struct PointwiseConv {
    /// `k x n`, row-major (input channels first, so a tile's weights are row segments).
    weight: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    relu6: bool,
    /// The weights in BF16 and the engine that multiplies them, when the product runs in
    /// BF16 ([`Self::in_bf16`]).
    #[cfg(target_arch = "x86_64")]
    bf16: Option<(super::bf16::Engine, super::bf16::PackedWeights)>,
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
            #[cfg(target_arch = "x86_64")]
            bf16: None,
        }
    }

    /// The same convolution with BF16 products (FP32 accumulation and epilogue), where
    /// they pay ([`super::bf16::Engine::min_inputs`]). Unchanged where the CPU has no BF16
    /// engine ([`super::bf16::engine`]): callers check it first.
    pub fn in_bf16(mut self) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(engine) = super::bf16::engine()
            && self.k >= engine.min_inputs()
        {
            let n = self.outputs();
            let packed = super::bf16::PackedWeights::new(&self.weight, self.k, n);
            self.bf16 = Some((engine, packed));
        }
        self
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
        if let Some((engine, w)) = &self.bf16 {
            // SAFETY: the engine is the one this CPU has; sizes asserted.
            return unsafe {
                super::bf16::product(*engine, w, a, m, &self.epilogue(residual), out)
            };
        }
        #[cfg(target_arch = "x86_64")]
        match simd::level() {
            // SAFETY: the CPU has the instruction set; the asserts above bound every row
            // and column the tiles touch.
            Level::Avx512 => return unsafe { self.tiles::<Avx512>(a, m, residual, out) },
            Level::Avx2 => return unsafe { self.tiles::<Avx2>(a, m, residual, out) },
            Level::Portable => {}
        }
        self.apply_portable(a, m, residual, out);
    }

    /// Where the product runs in BF16: the values per row of its input as BF16 rows
    /// (input channels zero-padded) and the buffer length for `m` rows, for a layer that
    /// writes its output straight into those rows ([`Self::apply_bf16_rows`]).
    #[cfg(target_arch = "x86_64")]
    pub fn bf16_rows(&self, m: usize) -> Option<(usize, usize)> {
        let (_, w) = self.bf16.as_ref()?;
        Some((w.row_len(), super::bf16::rows_len(w, m)))
    }

    /// [`Self::apply`] of an input already in BF16 rows ([`Self::bf16_rows`]).
    #[cfg(target_arch = "x86_64")]
    pub fn apply_bf16_rows(
        &self,
        rows: &[u16],
        m: usize,
        residual: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (engine, w) = self.bf16.as_ref().expect("the product runs in BF16");
        assert!(
            rows.len() >= super::bf16::rows_len(w, m),
            "rows hold m padded rows"
        );
        assert_eq!(out.len(), m * self.outputs(), "output is m x n");
        if let Some(r) = residual {
            assert_eq!(r.len(), out.len(), "residual is m x n");
        }
        // SAFETY: the engine is the one this CPU has; sizes asserted.
        unsafe { super::bf16::product_of_rows(*engine, w, rows, m, &self.epilogue(residual), out) }
    }

    #[cfg(target_arch = "x86_64")]
    fn epilogue<'a>(&'a self, residual: Option<&'a [f32]>) -> super::bf16::Epilogue<'a> {
        super::bf16::Epilogue {
            bias: &self.bias,
            residual,
            relu6: self.relu6,
        }
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

    /// Tile by tile. Safety: the CPU has `I`'s instruction set; `a`, `out` and `residual`
    /// have the sizes `apply` asserts.
    #[cfg(target_arch = "x86_64")]
    unsafe fn tiles<I: Isa>(&self, a: &[f32], m: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.outputs());
        let nr = 2 * I::LANES;
        for col in (0..n).step_by(nr) {
            let tile = Tile {
                b: self.weight[col..].as_ptr(),
                k,
                ld: n,
                bias: self.bias[col..].as_ptr(),
                cols: (n - col).min(nr),
                relu6: self.relu6,
            };
            for row in (0..m).step_by(I::MR) {
                let rows = (m - row).min(I::MR);
                let offset = row * n + col;
                let res = residual.map_or(std::ptr::null(), |r| r[offset..].as_ptr());
                let (a, c) = (a[row * k..].as_ptr(), out[offset..].as_mut_ptr());
                // SAFETY: rows row..row+rows of `a` hold k values each; the weight, output
                // and residual tiles (k or rows x cols at stride n) lie inside their slices;
                // the caller checked the instruction set.
                unsafe {
                    if I::LANES == 16 {
                        tile.run_avx512(rows, a, res, c)
                    } else {
                        tile.run_avx2(rows, a, res, c)
                    }
                }
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

/// Calls `$tile.kernel::<$isa, R, NV>` for `$rows` rows (R = 1..=12, at most `$isa::MR`)
/// and one or two vectors of columns.
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch {
    ($tile:ident, $isa:ty, $rows:ident, $($args:expr),*) => {{
        macro_rules! by_rows {
            ($nv:literal) => {
                match $rows {
                    12 => $tile.kernel::<$isa, 12, $nv>($($args),*),
                    11 => $tile.kernel::<$isa, 11, $nv>($($args),*),
                    10 => $tile.kernel::<$isa, 10, $nv>($($args),*),
                    9 => $tile.kernel::<$isa, 9, $nv>($($args),*),
                    8 => $tile.kernel::<$isa, 8, $nv>($($args),*),
                    7 => $tile.kernel::<$isa, 7, $nv>($($args),*),
                    6 => $tile.kernel::<$isa, 6, $nv>($($args),*),
                    5 => $tile.kernel::<$isa, 5, $nv>($($args),*),
                    4 => $tile.kernel::<$isa, 4, $nv>($($args),*),
                    3 => $tile.kernel::<$isa, 3, $nv>($($args),*),
                    2 => $tile.kernel::<$isa, 2, $nv>($($args),*),
                    _ => $tile.kernel::<$isa, 1, $nv>($($args),*),
                }
            };
        }
        if $tile.cols > <$isa>::LANES { by_rows!(2) } else { by_rows!(1) }
    }};
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, rows: usize, a: *const f32, res: *const f32, c: *mut f32) {
        // SAFETY: forwarded from the caller.
        unsafe { dispatch!(self, Avx512, rows, a, res, c) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, rows: usize, a: *const f32, res: *const f32, c: *mut f32) {
        // SAFETY: forwarded from the caller (rows <= Avx2::MR = 6).
        unsafe { dispatch!(self, Avx2, rows, a, res, c) }
    }

    /// `R x (LANES NV)` tile: accumulate over k, then bias, residual, ReLU6 and a store, all
    /// masked to the tile's `cols` columns.
    #[inline(always)]
    unsafe fn kernel<I: Isa, const R: usize, const NV: usize>(
        &self,
        a: *const f32,
        res: *const f32,
        c: *mut f32,
    ) {
        // SAFETY (whole body): `a` holds R rows of k values, `b` k rows of `cols` values at
        // stride ld, `bias` cols values; output and residual rows hold `cols` values at
        // stride ld. Every access beyond `cols` is masked off (and masked lanes are not
        // accessed).
        unsafe {
            let masks: [I::M; NV] =
                std::array::from_fn(|v| I::mask(self.cols.saturating_sub(I::LANES * v)));
            let full = self.cols == NV * I::LANES;
            let weights = |kk: usize| -> [I::V; NV] {
                let b_row = self.b.add(kk * self.ld);
                std::array::from_fn(|v| {
                    let p = b_row.add(I::LANES * v);
                    if full {
                        I::load(p)
                    } else {
                        I::load_masked(p, masks[v])
                    }
                })
            };
            // The sums start from the first input channel's products rather than from a
            // zeroed array, which LLVM lowers to a `memset` call per tile (1.1-1.5 KB; 3-4 %
            // of a whole run, `perf`). k >= 1: a convolution has an input channel.
            let b = weights(0);
            let mut acc: [[I::V; NV]; R] = std::array::from_fn(|r| {
                let x = I::splat(*a.add(r * self.k));
                std::array::from_fn(|v| I::fma(x, b[v], I::zero()))
            });
            for kk in 1..self.k {
                let b = weights(kk);
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let x = I::splat(*a.add(r * self.k + kk));
                    for v in 0..NV {
                        acc_row[v] = I::fma(x, b[v], acc_row[v]);
                    }
                }
            }
            // The options are settled once per tile: branches inside the unrolled stores
            // made the compiler spill the accumulators and finish them in a loop.
            match (!res.is_null(), self.relu6) {
                (false, false) => self.finish::<I, R, NV, false, false>(&acc, &masks, res, c),
                (false, true) => self.finish::<I, R, NV, false, true>(&acc, &masks, res, c),
                (true, false) => self.finish::<I, R, NV, true, false>(&acc, &masks, res, c),
                (true, true) => self.finish::<I, R, NV, true, true>(&acc, &masks, res, c),
            }
        }
    }

    /// Bias, residual (`RESIDUAL`), ReLU6 (`RELU6`) and the masked stores of a tile.
    #[inline(always)]
    unsafe fn finish<
        I: Isa,
        const R: usize,
        const NV: usize,
        const RESIDUAL: bool,
        const RELU6: bool,
    >(
        &self,
        acc: &[[I::V; NV]; R],
        masks: &[I::M; NV],
        res: *const f32,
        c: *mut f32,
    ) {
        // SAFETY: the caller's (`kernel`).
        unsafe {
            for (r, acc_row) in acc.iter().enumerate() {
                for v in 0..NV {
                    let bias = I::load_masked(self.bias.add(I::LANES * v), masks[v]);
                    let mut y = I::add(acc_row[v], bias);
                    let at = r * self.ld + I::LANES * v;
                    if RESIDUAL {
                        y = I::add(y, I::load_masked(res.add(at), masks[v]));
                    }
                    if RELU6 {
                        y = I::relu6(y);
                    }
                    I::store_masked(c.add(at), masks[v], y);
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
                let mut results = Vec::new();
                let mut run = |path: &dyn Fn(&mut [f32])| {
                    let mut out = vec![f32::NAN; m * n];
                    path(&mut out);
                    results.push(out);
                };
                run(&|out| conv.apply(&a, m, res, out));
                run(&|out| conv.apply_portable(&a, m, res, out));
                // Each instruction set this CPU has, whichever `apply` picked.
                #[cfg(target_arch = "x86_64")]
                {
                    if is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F; out is m x n like a.
                        run(&|out| unsafe { conv.tiles::<Avx512>(&a, m, res, out) });
                    }
                    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU has AVX2 and FMA; out is m x n like a.
                        run(&|out| unsafe { conv.tiles::<Avx2>(&a, m, res, out) });
                    }
                }
                for got in &results {
                    let want = &naive;
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

    /// Each BF16 engine this CPU has against the same naive product of BF16-rounded
    /// inputs: tails of rows (past 12 and 32), channels (odd, past 32) and columns (past
    /// 16 and 32), with and without residual and ReLU6.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_engines_match_the_product_of_rounded_inputs() {
        use crate::model::kernels::bf16::{Engine, PackedWeights};
        use crate::model::kernels::{amx, dpbf16};
        let engines: Vec<Engine> = [
            (Engine::Amx, amx::available()),
            (Engine::Avx512Bf16, dpbf16::available()),
        ]
        .into_iter()
        .filter_map(|(engine, here)| here.then_some(engine))
        .collect();
        if engines.is_empty() {
            eprintln!("no BF16 engine on this CPU: the BF16 paths are not exercised");
            return;
        }
        let round = |x: f32| {
            f32::from_bits(
                x.to_bits().wrapping_add(0x7fff + ((x.to_bits() >> 16) & 1)) & 0xffff_0000,
            )
        };
        let mut rng = Rng::new(11);
        for &(m, k, n) in &[
            (1, 1, 1),
            (33, 27, 32),
            (49, 40, 24),
            (70, 100, 33),
            (64, 64, 64),
            (13, 65, 17),
            // The tile plans of `dpbf16::column_tiles`: three strips, two and a half, a
            // half alone, a masked strip, with partial row blocks.
            (30, 16, 80),
            (9, 32, 48),
            (49, 40, 40),
            (25, 8, 8),
            (7, 20, 12),
        ] {
            let a = random(&mut rng, m * k);
            let w = random(&mut rng, n * k);
            let bias = random(&mut rng, n);
            let residual = random(&mut rng, m * n);
            for (engine, (relu6, res)) in engines
                .iter()
                .flat_map(|&e| [(false, None), (true, Some(&residual[..]))].map(|c| (e, c)))
            {
                let mut conv = PointwiseConv::new(&w, &bias, k, relu6);
                // Packed directly: `in_bf16` leaves the small-k shapes in FP32 on AMX.
                conv.bf16 = Some((engine, PackedWeights::new(&conv.weight, k, n)));
                let mut got = vec![f32::NAN; m * n];
                conv.apply(&a, m, res, &mut got);
                for row in 0..m {
                    for col in 0..n {
                        let mut s = bias[col] + res.map_or(0.0, |r| r[row * n + col]);
                        for kk in 0..k {
                            s += round(a[row * k + kk]) * round(w[col * k + kk]);
                        }
                        let want = if relu6 { s.clamp(0.0, 6.0) } else { s };
                        let g = got[row * n + col];
                        assert!(
                            (g - want).abs() < 1e-3,
                            "{engine:?} m={m} k={k} n={n} ({row},{col}): {g} vs {want}"
                        );
                    }
                }
            }
        }
    }
    /// A product of rows already in BF16 (as a depthwise layer writes them) is the product
    /// of the FP32 input, bit for bit, on the engine this CPU has.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_rows_give_the_same_product_as_fp32_input() {
        let Some(engine) = crate::model::kernels::bf16::engine() else {
            eprintln!("no BF16 engine on this CPU: the BF16 rows are not exercised");
            return;
        };
        let mut rng = Rng::new(13);
        for &(m, k, n) in &[(33, 96, 24), (13, 144, 40), (49, 672, 112)] {
            let a = random(&mut rng, m * k);
            let w = random(&mut rng, n * k);
            let bias = random(&mut rng, n);
            let residual = random(&mut rng, m * n);
            let mut conv = PointwiseConv::new(&w, &bias, k, true);
            conv.bf16 = Some((
                engine,
                crate::model::kernels::bf16::PackedWeights::new(&conv.weight, k, n),
            ));
            let (stride, len) = conv.bf16_rows(m).expect("packed in BF16");
            let mut rows = vec![0u16; len];
            for (row, values) in rows.chunks_exact_mut(stride).zip(a.chunks_exact(k)) {
                for (r, &v) in row.iter_mut().zip(values) {
                    *r = crate::model::kernels::bf16::bf16(v);
                }
            }
            let mut want = vec![f32::NAN; m * n];
            conv.apply(&a, m, Some(&residual), &mut want);
            let mut got = vec![f32::NAN; m * n];
            conv.apply_bf16_rows(&rows, m, Some(&residual), &mut got);
            assert!(
                want.iter()
                    .zip(&got)
                    .all(|(w, g)| w.to_bits() == g.to_bits()),
                "{engine:?} m={m} k={k} n={n}"
            );
        }
    }
}
