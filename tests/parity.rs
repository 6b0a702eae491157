//! Parity of the candle backbones with their PyTorch references.
//! Fixtures come from `tests/fixtures/make_fixtures.py` (PyTorch, dev-time only).

use candle_core::{Device, Tensor};
use snowscope::model::{Arch, FeatureModel, ModelConfig, Pooling, pool};
use snowscope::preprocess::normalise_into;
use std::path::{Path, PathBuf};

/// Largest tolerated error, relative to the largest reference magnitude.
const MAX_RELATIVE_ERROR: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(file: &str) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(file), &Device::Cpu).expect("fixture loads")
}

/// max |ours - reference| / max |reference|
fn relative_error(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shapes differ");
    let diff = (ours - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff / scale
}

/// Prints the error (the figure the README reports) and checks it against the bar.
fn assert_parity(label: &str, ours: &Tensor, reference: &Tensor) {
    let err = relative_error(ours, reference);
    println!("{label}: max relative error {err:.2e}");
    assert!(
        err <= MAX_RELATIVE_ERROR,
        "{label}: {err:.2e} > {MAX_RELATIVE_ERROR:.0e}"
    );
}

/// The parity images, preprocessed exactly as the reference script did.
fn parity_batch(model: &FeatureModel, count: usize) -> Tensor {
    let len = model.preprocess.len();
    let mut input = vec![0f32; count * len];
    for (i, chunk) in input.chunks_exact_mut(len).enumerate() {
        let image = image::open(fixture(&format!("parity_{i}.png")))
            .unwrap()
            .into_rgb8();
        normalise_into(&image, &model.preprocess, chunk);
    }
    Tensor::from_vec(input, (count, 3, 224, 224), &Device::Cpu).unwrap()
}

fn efficientnet(layer: &str) -> FeatureModel {
    FeatureModel::load(&ModelConfig {
        layer: Some(layer.into()),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn efficientnet_lite0_matches_pytorch() {
    let want = reference("effnet_lite0_parity.safetensors");
    let model = efficientnet("head");
    let x = parity_batch(&model, 4);
    let map = model.feature_map(&x).unwrap();
    for (name, pooling) in [("avg", Pooling::Avg), ("max", Pooling::Max)] {
        let label = format!("efficientnet-lite0 {name}-pooled features");
        assert_parity(&label, &pool(&map, pooling).unwrap(), &want[name]);
    }
    let head = &want["head_map"];
    let n = head.dim(0).unwrap();
    assert_parity(
        "efficientnet-lite0 head map",
        &map.narrow(0, 0, n).unwrap(),
        head,
    );
}

#[test]
fn efficientnet_lite0_inner_tap_matches_pytorch() {
    let want = reference("effnet_lite0_parity.safetensors");
    let model = efficientnet("block3");
    let x = parity_batch(&model, 4);
    let map = model.feature_map(&x).unwrap();
    assert_parity("efficientnet-lite0 block3 map", &map, &want["block_3_out"]);
}

#[test]
fn vgg16_block5_conv3_matches_torchvision_topology() {
    let path = fixture("vgg16_tiny.safetensors");
    let want = reference("vgg16_tiny.safetensors");
    let model = FeatureModel::load(&ModelConfig {
        arch: Arch::Vgg16,
        weights: Some(path),
        pooling: Pooling::None,
        ..Default::default()
    })
    .unwrap();
    let map = model.feature_map(&want["input"]).unwrap();
    assert_parity("vgg16 block5_conv3", &map, &want["block5_conv3"]);
}

#[test]
fn vgg16_without_weights_says_what_to_do() {
    let err = FeatureModel::load(&ModelConfig {
        arch: Arch::Vgg16,
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("--weights"));
}
