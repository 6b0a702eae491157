//! `SNOWSCOPE_PRECISION=f32|bf16` picks the model's precision for a quality bench (unset:
//! the default, BF16 where the CPU has AMX), so the two can be compared on the same sets.

use snowscope::model::Precision;

pub fn precision() -> Option<Precision> {
    let name = std::env::var("SNOWSCOPE_PRECISION").ok()?;
    let precision = Precision::from_name(&name);
    assert!(
        precision.is_some(),
        "SNOWSCOPE_PRECISION={name}: use f32 or bf16"
    );
    precision
}
