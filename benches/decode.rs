//! Decoding + resizing + normalising one photo (what each decoder thread does per image):
//! a 4000x3000 camera-sized JPEG (decoded at 1/8 scale in the DCT domain) and a 320x240
//! one. The photos are made here: smooth gradients plus seeded grain, JPEG quality 90, so
//! the entropy-coded data is as dense as a real photo's. `cargo bench --bench decode`
//! (set SNOWSCOPE_BENCH_JPEG=path.jpg to time a file of your own instead of the camera one).

use criterion::{Criterion, criterion_group, criterion_main};
use image::{ImageEncoder, RgbImage};
use snowscope::model::ModelConfig;
use snowscope::preprocess::prepare;
use std::path::PathBuf;

fn photo(dir: &std::path::Path, name: &str, w: u32, h: u32) -> PathBuf {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let img = RgbImage::from_fn(w, h, |x, y| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let grain = (state >> 61) as f32 * 3.0;
        let base = |f: f32| (127.0 + 100.0 * f.sin() + grain).clamp(0.0, 255.0) as u8;
        image::Rgb([
            base(x as f32 / w as f32 * 6.0),
            base(y as f32 / h as f32 * 5.0),
            base((x + y) as f32 / (w + h) as f32 * 9.0),
        ])
    });
    let path = dir.join(name);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    std::fs::write(&path, bytes).expect("write photo");
    path
}

fn decoding(c: &mut Criterion) {
    let pp = snowscope::model::FeatureModel::load(&ModelConfig::default())
        .expect("bundled model")
        .preprocess;
    let dir = tempfile::tempdir().expect("temp dir");
    let camera = std::env::var_os("SNOWSCOPE_BENCH_JPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| photo(dir.path(), "camera.jpg", 4000, 3000));
    let small = photo(dir.path(), "small.jpg", 320, 240);
    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    group.bench_function("jpeg_4000x3000", |b| {
        b.iter(|| prepare(&camera, &pp).expect("decodes"))
    });
    group.bench_function("jpeg_320x240", |b| {
        b.iter(|| prepare(&small, &pp).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, decoding);
criterion_main!(benches);
