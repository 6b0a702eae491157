//! The 1x1 convolution's product on Intel AMX (Advanced Matrix Extensions): BF16 inputs,
//! FP32 accumulation, the same fused epilogue (bias, residual, ReLU6) as [`super::gemm`].
//!
//! Why AMX and not AVX512-BF16's `vdpbf16ps`: on the Sapphire Rapids machine this was
//! written on, a register-bound loop of `vdpbf16ps` ran at 41 GFLOP/s per core, half the
//! 87 GFLOP/s of `vfmadd231ps` (one instruction every ~4 cycles), while `tdpbf16ps` on tiles
//! ran at 639 GFLOP/s. So BF16 pays here only through the tiles.
//!
//! Layout (Intel SDM vol. 1, ch. 18; the "VNNI" order `tdpbf16ps` reads): an A tile is 16
//! rows of 32 BF16 values (64 bytes) of the activations; a B tile is 16 rows, row `p`
//! holding for each of 16 output columns the pair of weights at input channels `2p, 2p+1`;
//! C is 16 x 16 FP32. Each call computes a 32 x 32 block of the output from two A tiles and
//! two B tiles into four C tiles, over all input channels in steps of 32.
//!
//! Stable Rust has no AMX intrinsics (`x86_amx_intrinsics` is unstable), so the tile
//! instructions are inline assembly; nothing else in the process touches tile registers.

use super::simd::{self, Avx512, Isa, Level};
use std::arch::asm;
use std::arch::x86_64::*;

/// The fewest input channels for which the tiles beat the FP32 kernel. Below it a block
/// has one or two tile steps, and converting, storing and finishing the tiles costs more
/// than the products save: at 1,344 rows (one band), k = 16-40 ran at 60-111 GFLOP/s on
/// the tiles against 86-113 in FP32, k = 96-144 at 107-110 against 92, k = 240-480 at
/// 240-450 against 55-125 (`cargo bench --bench kernels`, Sapphire Rapids).
pub const MIN_INPUTS: usize = 64;

/// Rows (and columns) of one tile.
const TILE: usize = 16;
/// Input channels per tile step: 64 bytes of BF16.
const K_STEP: usize = 32;
/// Output rows and columns of one block: 2 x 2 tiles.
const BLOCK: usize = 2 * TILE;

/// Whether this process can run the tiles: the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16
/// (for the conversions), the kernel granted the tile data state (Linux
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once per process), and
/// `SNOWSCOPE_KERNELS` does not ask for a lower level (to measure what other CPUs get).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf7 = __cpuid_count(7, 0);
        let cpu = simd::level() == Level::Avx512
            && leaf7.edx & (1 << 22) != 0
            && leaf7.edx & (1 << 24) != 0
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bf16");
        cpu && request_tile_state()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it changes only which register
    // state this process may use.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// A `k x n` weight matrix as BF16 B tiles: 16-column strips, each strip's tiles for
/// channels 0..32, 32..64, ... back to back; channels and columns padded with zeros to
/// multiples of 32.
pub struct PackedWeights {
    tiles: Vec<u16>,
    k: usize,
    n: usize,
    /// Tile steps over the (padded) input channels.
    k_steps: usize,
}

/// One tile: 16 rows of 32 BF16 values.
const TILE_VALUES: usize = TILE * K_STEP;

impl PackedWeights {
    /// From the `k x n` row-major FP32 weights (input channels first).
    pub fn new(weight: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), k * n, "weight is k x n");
        let k_steps = k.div_ceil(K_STEP);
        let strips = n.div_ceil(BLOCK) * 2;
        let mut tiles = vec![0u16; strips * k_steps * TILE_VALUES];
        for strip in 0..strips {
            for step in 0..k_steps {
                let tile = &mut tiles[(strip * k_steps + step) * TILE_VALUES..][..TILE_VALUES];
                for pair in 0..TILE {
                    for col in 0..TILE {
                        for half in 0..2 {
                            let (kk, nn) = (step * K_STEP + 2 * pair + half, strip * TILE + col);
                            if kk < k && nn < n {
                                tile[pair * K_STEP + 2 * col + half] = bf16(weight[kk * n + nn]);
                            }
                        }
                    }
                }
            }
        }
        Self {
            tiles,
            k,
            n,
            k_steps,
        }
    }
}

/// FP32 to BF16, rounding to nearest even (as `vcvtneps2bf16` does; weights are finite).
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

thread_local! {
    /// The activations as BF16 A tiles' rows, reused from call to call.
    static ROWS: std::cell::RefCell<Vec<u16>> = std::cell::RefCell::default();
}

/// `out (m x n) = act(a (m x k) . W + bias [+ residual])`.
///
/// # Safety
/// [`available`] is true; `a` is `m x w.k`, `out` and `residual` are `m x w.n`, `bias`
/// has `w.n` values.
pub unsafe fn product(
    w: &PackedWeights,
    a: &[f32],
    m: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
    relu6: bool,
    out: &mut [f32],
) {
    debug_assert!(a.len() == m * w.k && out.len() == m * w.n && bias.len() == w.n);
    ROWS.with_borrow_mut(|rows| {
        let stride = w.k_steps * K_STEP;
        let padded_rows = m.div_ceil(BLOCK) * BLOCK;
        // Grown, never shrunk: a resize down and up again would zero it on every layer.
        if rows.len() < padded_rows * stride {
            rows.resize(padded_rows * stride, 0);
        }
        let rows = &mut rows[..padded_rows * stride];
        // SAFETY: the caller checked `available`; the sizes are as asserted.
        unsafe {
            to_bf16_rows(a, m, w.k, stride, rows);
            tiles(w, rows, m, bias, residual, relu6, out);
        }
    });
}

/// Converts the `m x k` activations into rows of `stride` BF16 values, zero-padded. The
/// rows past `m` keep what an earlier call left there: they only reach output rows that
/// are never stored.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_rows(a: &[f32], m: usize, k: usize, stride: usize, rows: &mut [u16]) {
    for r in 0..m {
        let src = a[r * k..].as_ptr();
        let dst = rows[r * stride..].as_mut_ptr();
        for c in (0..stride).step_by(TILE) {
            let lanes = k.saturating_sub(c).min(TILE);
            // SAFETY: the masked load reads the row's `lanes` remaining values (none when
            // the tile lies in the padding); the store writes 16 values inside the row.
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

#[repr(C, align(64))]
struct TileConfig([u8; 64]);

#[repr(C, align(64))]
struct Block([f32; BLOCK * BLOCK]);

/// Every 32 x 32 block of the output.
#[target_feature(enable = "avx512f")]
unsafe fn tiles(
    w: &PackedWeights,
    rows: &[u16],
    m: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
    relu6: bool,
    out: &mut [f32],
) {
    // Palette 1, all eight tiles 16 rows x 64 bytes.
    let mut config = TileConfig([0; 64]);
    config.0[0] = 1;
    for t in 0..8 {
        config.0[16 + 2 * t] = 64;
        config.0[48 + t] = TILE as u8;
    }
    let a_stride = w.k_steps * K_STEP * 2;
    let strip_bytes = w.k_steps * TILE_VALUES * 2;
    // Two block buffers, alternated, so the tile stores of one block need not wait for the
    // epilogue still reading the previous one.
    let mut blocks = [Block([0.0; BLOCK * BLOCK]), Block([0.0; BLOCK * BLOCK])];
    let mut turn = 0;
    // SAFETY: the CPU has AMX (the caller checked); every tile load reads 16 rows of 64
    // bytes inside `rows` (padded to whole blocks) or inside a strip of `w.tiles`; the
    // stores write the 4 KB `block`.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        for row in (0..m).step_by(BLOCK) {
            for col in (0..w.n).step_by(BLOCK) {
                let block = &mut blocks[turn];
                turn ^= 1;
                let a = rows.as_ptr().cast::<u8>().add(row / TILE * TILE * a_stride);
                let b = w.tiles.as_ptr().cast::<u8>().add(col / TILE * strip_bytes);
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    "tileloadd tmm5, [{a2} + {lda}*1]",
                    "tileloadd tmm6, [{b} + {ldb}*1]",
                    "tileloadd tmm7, [{b2} + {ldb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "add {a}, 64",
                    "add {a2}, 64",
                    "add {b}, 1024",
                    "add {b2}, 1024",
                    "dec {steps}",
                    "jnz 2b",
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    "tilestored [{c2} + {ldc}*1], tmm2",
                    "tilestored [{c2} + {ldc}*1 + 64], tmm3",
                    a = inout(reg) a => _,
                    a2 = inout(reg) a.add(TILE * a_stride) => _,
                    b = inout(reg) b => _,
                    b2 = inout(reg) b.add(strip_bytes) => _,
                    lda = in(reg) a_stride,
                    ldb = in(reg) 64usize,
                    steps = inout(reg) w.k_steps => _,
                    c = in(reg) block.0.as_mut_ptr(),
                    c2 = in(reg) block.0.as_mut_ptr().add(TILE * BLOCK),
                    ldc = in(reg) BLOCK * 4,
                    options(nostack),
                );
                epilogue(block, row, col, m, w.n, bias, residual, relu6, out);
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// Adds bias (and residual), clamps, and stores the block's rows and columns that lie
/// inside the `m x n` output.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn epilogue(
    block: &Block,
    row: usize,
    col: usize,
    m: usize,
    n: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
    relu6: bool,
    out: &mut [f32],
) {
    // SAFETY: every load and store is masked to the columns below `n` of rows below `m`.
    unsafe {
        for half in 0..2 {
            let c0 = col + half * TILE;
            let lanes = n.saturating_sub(c0).min(TILE);
            if lanes == 0 {
                break;
            }
            let mask = Avx512::mask(lanes);
            let bias = Avx512::load_masked(bias.as_ptr().add(c0), mask);
            for r in 0..(m - row).min(BLOCK) {
                let at = (row + r) * n + c0;
                let mut y = Avx512::add(
                    Avx512::load(block.0.as_ptr().add(r * BLOCK + half * TILE)),
                    bias,
                );
                if let Some(res) = residual {
                    y = Avx512::add(y, Avx512::load_masked(res.as_ptr().add(at), mask));
                }
                if relu6 {
                    y = Avx512::relu6(y);
                }
                Avx512::store_masked(out.as_mut_ptr().add(at), mask, y);
            }
        }
    }
}
