//! Makes the bundled half-precision weights from the FP32 file (dev-time; see
//! `weights/README.md`):
//!
//! ```sh
//! cargo run --release --example halve_weights -- \
//!     weights/efficientnet-lite0.safetensors weights/efficientnet-lite0.f16.safetensors
//! ```
//!
//! Convolution kernels (4-D tensors, 99 % of the values) are stored as IEEE F16, rounded to
//! nearest; batch-norm vectors stay F32 (they are few, and the running variances span four
//! decades). The ImageNet classifier `_fc.*` is dropped: snowscope taps features before
//! it. The loader widens everything to F32, so the model runs exactly as with the FP32
//! file apart from the rounding of the kernels. The output is byte-for-byte reproducible.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        anyhow::bail!("usage: halve_weights FP32.safetensors OUT.safetensors");
    };
    let tensors = candle_core::safetensors::load(input, &Device::Cpu)?;
    let mut kept: HashMap<String, Tensor> = HashMap::new();
    let (mut halved, mut values) = (0usize, 0usize);
    for (name, tensor) in tensors {
        if name.starts_with("_fc.") {
            continue;
        }
        let tensor = if tensor.rank() == 4 {
            halved += tensor.elem_count();
            tensor.to_dtype(DType::F16)?
        } else {
            tensor
        };
        values += tensor.elem_count();
        kept.insert(name, tensor);
    }
    candle_core::safetensors::save(&kept, output)?;
    let bytes = std::fs::metadata(output)?.len();
    println!(
        "{output}: {} tensors, {values} values ({halved} in F16), {:.2} MB",
        kept.len(),
        bytes as f64 / 1e6
    );
    Ok(())
}
