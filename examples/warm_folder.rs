//! Makes a folder of N tiny distinct PNGs and a feature cache for it as if every image had
//! been extracted (synthetic clustered features, random traits), for measuring a warm
//! start at sizes whose extraction would take hours (dev-time; README, "Large folders"):
//!
//! ```sh
//! cargo run --release --example warm_folder -- 1000000 /tmp/warm/images /tmp/warm/cache
//! snowscope rank /tmp/warm/images --cache-dir /tmp/warm/cache --top 5   # searches once
//! snowscope rank /tmp/warm/images --cache-dir /tmp/warm/cache --top 5   # the warm start
//! snowscope /tmp/warm/images --cache-dir /tmp/warm/cache                # the explorer
//! ```
//!
//! A fourth argument `f16` writes the cache `--cache-precision f16` opens instead; images
//! already there are kept, so both caches can be made for one folder.
//!
//! The images sit 1,000 to a subfolder. The cache is the one `snowscope` itself would
//! open for the folder (default model, `pipeline::cache_key`), written through
//! `FeatureStore`, so only the feature values are made up.

use rayon::prelude::*;
use snowscope::model::{FeatureModel, ModelConfig};
use snowscope::rng::{Clustered, Rng};
use snowscope::store::{CachePrecision, FeatureStore, FileStamp};
use std::path::{Path, PathBuf};

const PER_FOLDER: usize = 1000;
const BLOCK: usize = 8192;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (precision, args) = match args.as_slice() {
        [rest @ .., last] if last == "f16" => (CachePrecision::F16, rest),
        all => (CachePrecision::F32, all),
    };
    let [n, images, cache] = args else {
        anyhow::bail!("usage: warm_folder IMAGES_COUNT IMAGES_DIR CACHE_DIR [f16]");
    };
    let n: usize = n.parse()?;
    let (images, cache) = (Path::new(images), Path::new(cache));
    (0..n)
        .into_par_iter()
        .try_for_each(|i| write_image(images, i))?;
    eprintln!("wrote {n} images under {}", images.display());

    let root = images.canonicalize()?;
    let found = snowscope::scan::scan(&root)?;
    let hashes: Vec<String> = found
        .files
        .par_iter()
        .map(|f| snowscope::scan::content_hash(&f.path))
        .collect::<std::io::Result<_>>()?;
    let model = FeatureModel::load(&ModelConfig::default())?;
    let key = snowscope::pipeline::cache_key(&model, None, precision);
    let (mut store, _) = FeatureStore::open_as(cache, &root, &key, precision);
    let dim: usize = model.blocks.iter().map(|b| b.1).sum();
    let features = Clustered::new(dim, 3000, 18);
    let traits = snowscope::traits::COUNT;
    for start in (0..hashes.len()).step_by(BLOCK) {
        let block = &hashes[start..(start + BLOCK).min(hashes.len())];
        let rows: Vec<(Vec<f32>, Vec<f32>)> = (start..start + block.len())
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0.0; dim];
                features.row(i as u64, &mut row);
                let mut rng = Rng::derive(19, i as u64);
                (row, (0..traits).map(|_| rng.f32()).collect())
            })
            .collect();
        for (hash, (row, traits)) in block.iter().zip(rows) {
            store.insert(hash, &row, &traits)?;
        }
    }
    store.set_files(found.files.iter().zip(&hashes).map(|(f, hash)| FileStamp {
        rel: &f.rel,
        size: f.size,
        mtime_ns: f.mtime_ns,
        hash,
    }));
    store.save()?;
    eprintln!(
        "wrote the feature cache of {} images ({dim} features each) to {}",
        store.len(),
        store.path().map(Path::display).expect("a cache folder")
    );
    Ok(())
}

/// Image `i`: 2 x 2 pixels whose colours spell `i`, so that every file is distinct.
fn write_image(images: &Path, i: usize) -> anyhow::Result<()> {
    let folder: PathBuf = images.join(format!("{:04}", i / PER_FOLDER));
    let path = folder.join(format!("{i:07}.png"));
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&folder)?;
    let bytes = (i as u32).to_le_bytes();
    let pixels = [
        bytes[0], bytes[1], bytes[2], bytes[3], 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let image = image::RgbImage::from_raw(2, 2, pixels.to_vec()).expect("2 x 2 x 3 bytes");
    image.save(path)?;
    Ok(())
}
