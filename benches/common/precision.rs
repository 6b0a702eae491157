//! `SNOWSCOPE_PRECISION=f32|bf16` picks the model's precision for a quality bench (unset:
//! the default, BF16 where the CPU has AMX), so the two can be compared on the same sets;
//! `SNOWSCOPE_CACHE_PRECISION=f32|f16` picks how the feature cache holds the features.

use snowscope::model::Precision;
use snowscope::store::CachePrecision;

pub fn precision() -> Option<Precision> {
    let name = std::env::var("SNOWSCOPE_PRECISION").ok()?;
    let precision = Precision::from_name(&name);
    assert!(
        precision.is_some(),
        "SNOWSCOPE_PRECISION={name}: use f32 or bf16"
    );
    precision
}

#[allow(dead_code)] // The extract bench has no cache.
pub fn cache_precision() -> CachePrecision {
    match std::env::var("SNOWSCOPE_CACHE_PRECISION").as_deref() {
        Err(_) | Ok("f32") => CachePrecision::F32,
        Ok("f16") => CachePrecision::F16,
        Ok(name) => panic!("SNOWSCOPE_CACHE_PRECISION={name}: use f32 or f16"),
    }
}
