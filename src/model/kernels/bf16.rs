//! The 1x1 convolution's product in BF16 (inputs rounded to BF16, products summed in
//! FP32, the same fused epilogue as [`super::gemm`]), on whichever engine this CPU has:
//! Intel AMX tiles ([`super::amx`]) or AVX512-BF16's `vdpbf16ps` on vector registers
//! ([`super::dpbf16`], AMD Zen 4 and later). Both read the operands in the same "VNNI"
//! order, packed here: the weights as pairs of input channels per output column, the
//! activations as BF16 rows, rounded to nearest even by the same instructions.

use super::simd::{Avx512, Isa};
use std::arch::x86_64::*;

/// Input channels per packed step: one AMX tile row, 64 bytes of BF16.
pub(super) const K_STEP: usize = 32;
/// Output columns per packed strip: one AMX tile's columns, one 512-bit vector of FP32.
pub(super) const STRIP: usize = 16;
/// BF16 values of one strip's step: 16 pairs of channels by 16 columns by 2.
pub(super) const STEP_VALUES: usize = STRIP * K_STEP;

/// What runs the BF16 products on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Intel AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 `vdpbf16ps` on vector registers.
    Avx512Bf16,
}

impl Engine {
    /// The fewest input channels for which this engine's products beat the FP32 kernel
    /// (`cargo bench --bench kernels`, with and without `SNOWSCOPE_PRECISION=bf16`).
    /// AMX: below 64 a block has one or two tile steps, and converting, storing and
    /// finishing the tiles costs more than the products save: at 1,344 rows (one band),
    /// k = 16-40 ran at 60-111 GFLOP/s on the tiles against 86-113 in FP32, k = 96-144 at
    /// 107-110 against 92, k = 240-480 at 240-450 against 55-125 (Sapphire Rapids).
    /// AVX512-BF16 pays on every layer of EfficientNet-Lite0: k = 16-40 and the stem ran
    /// at 104-162 GFLOP/s against 60-98 in FP32, the 1x1 products and stem of an image
    /// took 4.2 ms against 5.1 ms with the AMX threshold (AMD Zen 4).
    pub fn min_inputs(self) -> usize {
        match self {
            Engine::Amx => 64,
            Engine::Avx512Bf16 => 1,
        }
    }

    /// What the BF16 model id adds for this engine. The two round different sets of
    /// layers ([`Self::min_inputs`]), so their features differ by more than the order of
    /// sums and are cached apart. AMX adds nothing, so its caches stay valid.
    pub fn id_tag(self) -> &'static str {
        match self {
            Engine::Amx => "",
            Engine::Avx512Bf16 => "-dp",
        }
    }
}

/// The BF16 engine this process uses, if any. AMX comes first where both exist: on
/// Sapphire Rapids a register-bound `vdpbf16ps` loop ran at half the FP32 FMA rate, while
/// the tiles ran 7x faster (`amx.rs`). On AMD Zen 4 (no AMX) `vdpbf16ps` does twice the
/// multiply-adds of `vfmadd231ps` per cycle: 230 against 115 GFLOP/s per core measured.
pub fn engine() -> Option<Engine> {
    if super::amx::available() {
        Some(Engine::Amx)
    } else if super::dpbf16::available() {
        Some(Engine::Avx512Bf16)
    } else {
        None
    }
}

/// A `k x n` weight matrix in BF16, in 16-column strips: each strip holds, for every pair
/// of input channels `2p, 2p+1`, the 16 columns' pairs of weights (32 values), the pairs in
/// order. Channels and columns are padded with zeros to multiples of 32, so a strip is a
/// run of whole AMX B tiles (one per 32 channels) and every strip has a neighbour.
pub struct PackedWeights {
    pub(super) values: Vec<u16>,
    pub(super) k: usize,
    pub(super) n: usize,
    /// Steps of [`K_STEP`] over the (padded) input channels.
    pub(super) k_steps: usize,
}

impl PackedWeights {
    /// From the `k x n` row-major FP32 weights (input channels first).
    pub fn new(weight: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), k * n, "weight is k x n");
        let k_steps = k.div_ceil(K_STEP);
        let strips = n.div_ceil(2 * STRIP) * 2;
        let pairs = k_steps * K_STEP / 2;
        let mut values = vec![0u16; strips * k_steps * STEP_VALUES];
        for (strip, packed) in values.chunks_exact_mut(pairs * 2 * STRIP).enumerate() {
            for (pair, row) in packed.chunks_exact_mut(2 * STRIP).enumerate() {
                for (col, two) in row.chunks_exact_mut(2).enumerate() {
                    for (half, v) in two.iter_mut().enumerate() {
                        let (kk, nn) = (2 * pair + half, strip * STRIP + col);
                        if kk < k && nn < n {
                            *v = bf16(weight[kk * n + nn]);
                        }
                    }
                }
            }
        }
        Self {
            values,
            k,
            n,
            k_steps,
        }
    }

    /// BF16 values from one strip to the next.
    pub(super) fn strip_len(&self) -> usize {
        self.k_steps * STEP_VALUES
    }

    /// BF16 values per activation row: the input channels padded to whole steps.
    pub(super) fn row_len(&self) -> usize {
        self.k_steps * K_STEP
    }
}

/// FP32 to BF16, rounding to nearest even (as `vcvtneps2bf16` does; weights are finite).
pub(super) fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

thread_local! {
    /// The activations as BF16 rows, reused from call to call.
    static ROWS: std::cell::RefCell<Vec<u16>> = std::cell::RefCell::default();
}

/// Values of a buffer of BF16 rows for `m` rows of `w`'s input: whole 32-row blocks, which
/// AMX reads (the rows past `m` only reach output rows that are never stored).
pub fn rows_len(w: &PackedWeights, m: usize) -> usize {
    m.div_ceil(2 * STRIP) * 2 * STRIP * w.row_len()
}

/// `out (m x n) = act(a (m x k) . W + bias [+ residual])`.
///
/// # Safety
/// `engine` is [`engine`]'s answer; `a` is `m x w.k`; `out` and the epilogue's slices
/// are `m x w.n`.
pub unsafe fn product(
    engine: Engine,
    w: &PackedWeights,
    a: &[f32],
    m: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
) {
    debug_assert!(a.len() == m * w.k);
    ROWS.with_borrow_mut(|rows| {
        let len = rows_len(w, m);
        // Grown, never shrunk: a resize down and up again would zero it on every layer.
        if rows.len() < len {
            rows.resize(len, 0);
        }
        // SAFETY: the caller checked the engine; the sizes are as asserted.
        unsafe {
            to_bf16_rows(a, m, w.k, w.row_len(), &mut rows[..len]);
            product_of_rows(engine, w, &rows[..len], m, epilogue, out);
        }
    });
}

/// [`product`] of activations already in BF16 rows (`w.row_len()` values each, the lanes
/// past `w.k` zero), as a layer that writes them directly leaves them.
///
/// # Safety
/// `engine` is [`engine`]'s answer; `rows` holds [`rows_len`] values; `out` and the
/// epilogue's slices are `m x w.n`.
pub unsafe fn product_of_rows(
    engine: Engine,
    w: &PackedWeights,
    rows: &[u16],
    m: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
) {
    debug_assert!(out.len() == m * w.n && epilogue.bias.len() == w.n);
    debug_assert!(rows.len() >= rows_len(w, m));
    // SAFETY: forwarded from the caller.
    unsafe {
        match engine {
            Engine::Amx => super::amx::tiles(w, rows, m, epilogue, out),
            Engine::Avx512Bf16 => super::dpbf16::product(w, rows, m, epilogue, out),
        }
    }
}

/// Converts the `m x k` activations into rows of `stride` BF16 values, zero-padded. The
/// rows past `m` keep what an earlier call left there: they only reach output rows that
/// are never stored.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_rows(a: &[f32], m: usize, k: usize, stride: usize, rows: &mut [u16]) {
    for r in 0..m {
        let src = a[r * k..].as_ptr();
        let dst = rows[r * stride..].as_mut_ptr();
        for c in (0..stride).step_by(STRIP) {
            let lanes = k.saturating_sub(c).min(STRIP);
            // SAFETY: the masked load reads the row's `lanes` remaining values (none when
            // the vector lies in the padding); the store writes 16 values inside the row.
            unsafe {
                let v = _mm512_maskz_loadu_ps(Avx512::mask(lanes), src.add(c.min(k)));
                let packed = _mm512_cvtneps_pbh(v);
                _mm256_storeu_si256(
                    dst.add(c).cast(),
                    std::mem::transmute::<__m256bh, __m256i>(packed),
                );
            }
        }
    }
}

/// What follows the sums: `act(sum + bias [+ residual])`, stored.
pub struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub residual: Option<&'a [f32]>,
    pub relu6: bool,
}

impl Epilogue<'_> {
    /// Finishes 16 sums of output row `row`, columns `col..col + lanes`, and stores them.
    ///
    /// # Safety
    /// AVX-512F; `row < m`, `col + lanes <= n`, `out` (and the residual) are `m x n`.
    #[inline(always)]
    pub unsafe fn store(
        &self,
        sums: __m512,
        row: usize,
        col: usize,
        lanes: usize,
        out: &mut [f32],
    ) {
        // SAFETY: forwarded.
        unsafe {
            match (self.residual.is_some(), self.relu6) {
                (false, false) => self.store_with::<false, false>(sums, row, col, lanes, out),
                (false, true) => self.store_with::<false, true>(sums, row, col, lanes, out),
                (true, false) => self.store_with::<true, false>(sums, row, col, lanes, out),
                (true, true) => self.store_with::<true, true>(sums, row, col, lanes, out),
            }
        }
    }

    /// [`Self::store`] with the options as constants, `RESIDUAL` being whether there is
    /// one, so that a kernel that settles them once per tile has no branch per vector.
    ///
    /// # Safety
    /// As [`Self::store`].
    #[inline(always)]
    pub unsafe fn store_with<const RESIDUAL: bool, const RELU6: bool>(
        &self,
        sums: __m512,
        row: usize,
        col: usize,
        lanes: usize,
        out: &mut [f32],
    ) {
        let n = self.bias.len();
        let at = row * n + col;
        // SAFETY: every load and store is masked to `lanes` columns inside row `row`.
        unsafe {
            let mask = Avx512::mask(lanes);
            let mut y = Avx512::add(sums, Avx512::load_masked(self.bias.as_ptr().add(col), mask));
            if RESIDUAL && let Some(res) = self.residual {
                y = Avx512::add(y, Avx512::load_masked(res.as_ptr().add(at), mask));
            }
            if RELU6 {
                y = Avx512::relu6(y);
            }
            Avx512::store_masked(out.as_mut_ptr().add(at), mask, y);
        }
    }
}
