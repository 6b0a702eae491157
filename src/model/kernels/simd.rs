//! The vector instructions the x86-64 kernels are written against, one implementation per
//! instruction set, so a kernel is written once and compiled for each.
//!
//! Every method is `#[inline(always)]` and has no target features of its own: it is meant
//! to be inlined into a kernel that is itself inlined into a `#[target_feature]` entry
//! point (`run_avx512`, `run_avx2` in the kernels), where the intrinsics then inline too.

use std::arch::x86_64::*;

pub use crate::cpu::{Level, level};

/// One vector instruction set: f32 vectors of `LANES` lanes and lane masks. Every method
/// needs the instruction set on the CPU; the memory ones need `LANES` floats (the masked
/// lanes, for the masked ones) valid at the pointer.
pub trait Isa {
    const LANES: usize;
    /// Rows of the matrix-product register tile (which holds `MR x 2` accumulators).
    const MR: usize;
    type V: Copy;
    type M: Copy;
    /// A mask of the first `lanes` lanes.
    unsafe fn mask(lanes: usize) -> Self::M;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// Masked-off lanes are zero and not read.
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Only the masked-on lanes are written.
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    /// `a * b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn relu6(v: Self::V) -> Self::V;
}

pub struct Avx512;

impl Isa for Avx512 {
    const LANES: usize = 16;
    // 12 x 2 accumulators, 2 weight vectors and a broadcast: 27 of the 32 registers.
    const MR: usize = 12;
    type V = __m512;
    type M = __mmask16;
    #[inline(always)]
    unsafe fn mask(lanes: usize) -> __mmask16 {
        ((1u32 << lanes.min(16)) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn relu6(v: __m512) -> __m512 {
        unsafe { _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0)) }
    }
}

pub struct Avx2;

impl Isa for Avx2 {
    const LANES: usize = 8;
    // 6 x 2 accumulators, 2 weight vectors and a broadcast: 15 of the 16 registers.
    const MR: usize = 6;
    type V = __m256;
    type M = __m256i;
    #[inline(always)]
    unsafe fn mask(lanes: usize) -> __m256i {
        // Lane i is on when i < lanes (the sign bit is what masked moves read).
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(lanes.min(8) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn relu6(v: __m256) -> __m256 {
        unsafe { _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(6.0)) }
    }
}
