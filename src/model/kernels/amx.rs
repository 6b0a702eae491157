//! The BF16 product ([`super::bf16`]) on Intel AMX (Advanced Matrix Extensions) tiles.
//!
//! Why AMX and not AVX512-BF16's `vdpbf16ps` where both exist: on the Sapphire Rapids
//! machine this was written on, a register-bound loop of `vdpbf16ps` ran at 41 GFLOP/s per
//! core, half the 87 GFLOP/s of `vfmadd231ps` (one instruction every ~4 cycles), while
//! `tdpbf16ps` on tiles ran at 639 GFLOP/s.
//!
//! Layout (Intel SDM vol. 1, ch. 18; the "VNNI" order `tdpbf16ps` reads): an A tile is 16
//! rows of 32 BF16 values (64 bytes) of the activations; a B tile is 16 rows, row `p`
//! holding for each of 16 output columns the pair of weights at input channels `2p, 2p+1`
//! (one step of a [`PackedWeights`] strip); C is 16 x 16 FP32. Each block of the output,
//! 32 x 32, comes from two A tiles and two B tiles into four C tiles, over all input
//! channels in steps of 32.
//!
//! Stable Rust has no AMX intrinsics (`x86_amx_intrinsics` is unstable), so the tile
//! instructions are inline assembly; nothing else in the process touches tile registers.

use super::bf16::{Epilogue, K_STEP, PackedWeights, STEP_VALUES};
use super::simd::{self, Level};
use std::arch::asm;
use std::arch::x86_64::*;

/// Rows (and columns) of one tile.
const TILE: usize = 16;
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

#[repr(C, align(64))]
struct TileConfig([u8; 64]);

#[repr(C, align(64))]
struct Block([f32; BLOCK * BLOCK]);

/// Every 32 x 32 block of the output, from the BF16 `rows` (`w.row_len()` values each,
/// whole blocks of rows).
///
/// # Safety
/// [`available`]; `rows` holds `m.div_ceil(32) * 32` rows; `out` is `m x w.n` and the
/// epilogue's slices match it.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tiles(
    w: &PackedWeights,
    rows: &[u16],
    m: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
) {
    debug_assert!(rows.len() >= m.div_ceil(BLOCK) * BLOCK * w.row_len());
    // Palette 1, all eight tiles 16 rows x 64 bytes.
    let mut config = TileConfig([0; 64]);
    config.0[0] = 1;
    for t in 0..8 {
        config.0[16 + 2 * t] = 64;
        config.0[48 + t] = TILE as u8;
    }
    let a_stride = w.row_len() * 2;
    let strip_bytes = w.strip_len() * 2;
    // Two block buffers, alternated, so the tile stores of one block need not wait for the
    // epilogue still reading the previous one.
    let mut blocks = [Block([0.0; BLOCK * BLOCK]), Block([0.0; BLOCK * BLOCK])];
    let mut turn = 0;
    // SAFETY: the CPU has AMX (the caller checked); every tile load reads 16 rows of 64
    // bytes inside `rows` (padded to whole blocks) or inside a strip of `w.values`; the
    // stores write the 4 KB `block`; the epilogue stores only rows below `m` and columns
    // below `n`.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        for row in (0..m).step_by(BLOCK) {
            for col in (0..w.n).step_by(BLOCK) {
                let block = &mut blocks[turn];
                turn ^= 1;
                let a = rows.as_ptr().cast::<u8>().add(row * a_stride);
                let b = w.values.as_ptr().cast::<u8>().add(col / TILE * strip_bytes);
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
                    "add {b}, {step}",
                    "add {b2}, {step}",
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
                    ldb = in(reg) K_STEP * 2,
                    step = in(reg) STEP_VALUES * 2,
                    steps = inout(reg) w.k_steps => _,
                    c = in(reg) block.0.as_mut_ptr(),
                    c2 = in(reg) block.0.as_mut_ptr().add(TILE * BLOCK),
                    ldc = in(reg) BLOCK * 4,
                    options(nostack),
                );
                for half in 0..2 {
                    let c0 = col + half * TILE;
                    let lanes = w.n.saturating_sub(c0).min(TILE);
                    if lanes == 0 {
                        break;
                    }
                    for r in 0..(m - row).min(BLOCK) {
                        let sums = _mm512_load_ps(block.0.as_ptr().add(r * BLOCK + half * TILE));
                        epilogue.store(sums, row + r, c0, lanes, out);
                    }
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}
