//! Extraction throughput: EfficientNet-Lite0 features (avg-pooled, 1280-d) of a batch of
//! 32 images at 224x224, model only (decoding excluded), with the global thread pool.
//! Compare with `benches/peer_extract.py` (PyTorch eager, ONNX Runtime) on the same machine.
//! The default precision (BF16 where the CPU has AMX-BF16 or AVX512-BF16); `SNOWSCOPE_PRECISION=f32` for FP32.

#[path = "common/precision.rs"]
mod precision;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use precision::precision;
use snowscope::model::{FeatureModel, ModelConfig};

fn extraction(c: &mut Criterion) {
    let model = FeatureModel::load(&ModelConfig {
        precision: precision(),
        ..ModelConfig::default()
    })
    .expect("bundled model loads");
    let batch = 32;
    // A deterministic, image-like input (smooth gradients) in the normalised range.
    let len = model.preprocess.len();
    let input: Vec<f32> = (0..batch * len)
        .map(|i| (((i % 224) as f32 * 0.02).sin() + ((i / 224 % 224) as f32 * 0.03).cos()) * 0.8)
        .collect();
    let mut group = c.benchmark_group("extract");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("efficientnet_lite0_b32_224", |b| {
        let images: Vec<&[f32]> = input.chunks_exact(len).collect();
        b.iter(|| model.features(&images).expect("forward pass"))
    });
    group.finish();
}

criterion_group!(benches, extraction);
criterion_main!(benches);
