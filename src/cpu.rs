//! Which vector instruction set this process uses on this x86-64 CPU, chosen once at run
//! time (the crate is built for baseline x86-64): the model's kernels and the image
//! resize are each compiled for every level and run the one named here.

/// An instruction set level, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    /// Plain loops and the `gemm` crate.
    Portable,
}

/// The instruction set for this process: the best the CPU has, unless
/// `SNOWSCOPE_KERNELS=avx2` or `=portable` asks for a lower one (to measure what CPUs
/// without AVX-512 get).
pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("SNOWSCOPE_KERNELS").as_deref() {
            Ok("portable") => Level::Portable,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if cap == Level::Avx512 && avx2 && is_x86_feature_detected!("avx512f") {
            Level::Avx512
        } else if cap != Level::Portable && avx2 {
            Level::Avx2
        } else {
            Level::Portable
        }
    })
}
