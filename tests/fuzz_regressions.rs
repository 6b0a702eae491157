//! Inputs the fuzzers (tests/fuzz, README "Fuzzing") found crashing, replayed on every
//! `cargo test`: each must now give an error or a usable result, never a panic.
//!
//! tests/fixtures/fuzz-regressions/
//!   store/*.safetensors  feature cache files (root `/photos`, model `fuzz-model`)
//!   knn/*.knn            neighbour-list caches of the fuzz target's 3-point set
//!   preprocess/*         image files for `preprocess::prepare` (the fuzzer's input as is)
//!   store/crash-*        the fuzzer's own inputs (`cargo fuzz run --fuzz-dir tests/fuzz
//!                        store_load FILE`); `SNOWSCOPE_FUZZ_DUMP=F` writes the cache file made of one

use snowscope::neighbours::knn_cached;
use snowscope::preprocess::{Preprocess, prepare};
use snowscope::store::FeatureStore;
use std::path::{Path, PathBuf};

fn regressions(kind: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz-regressions")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| match ext {
        Some(ext) => p.extension().is_some_and(|e| e == ext),
        None => true,
    });
    files.sort();
    files
}

/// The row hashes a cache file's manifest names (to look each one up).
fn manifest_rows(bytes: &[u8]) -> Vec<String> {
    let rows = || -> Option<Vec<String>> {
        let tensors = safetensors::SafeTensors::deserialize(bytes).ok()?;
        let manifest = tensors.tensor("manifest").ok()?;
        let value: serde_json::Value = serde_json::from_slice(manifest.data()).ok()?;
        serde_json::from_value(value.get("rows")?.clone()).ok()
    };
    rows().unwrap_or_default()
}

#[test]
fn feature_cache_files() {
    for file in regressions("store", Some("safetensors")) {
        let bytes = std::fs::read(&file).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        std::fs::write(
            FeatureStore::file_for(cache.path(), root, "fuzz-model"),
            &bytes,
        )
        .unwrap();
        let (mut store, err) = FeatureStore::open(cache.path(), root, "fuzz-model");
        eprintln!("{}: {err:?}", file.display());
        if err.is_some() {
            assert!(store.is_empty(), "{}", file.display());
            continue;
        }
        for hash in manifest_rows(&bytes) {
            if let (Some(row), Ok(rows)) = (store.row_of(&hash), store.verified()) {
                assert_eq!(rows.features(row).len(), store.dim(), "{}", file.display());
            }
        }
        let width = if store.is_empty() { 4 } else { store.dim() };
        let new = blake3::hash(b"new").to_hex();
        store.insert(&new, &vec![0.5; width], &[]).unwrap();
        // What was accepted is saved and read back (an empty file once failed here).
        store.set_files(vec![snowscope::store::FileStamp {
            rel: "new.png",
            size: 1,
            mtime_ns: 1,
            hash: &new,
        }]);
        store.save().unwrap();
        let (again, err) = FeatureStore::open(cache.path(), root, "fuzz-model");
        assert!(err.is_none(), "{}: {err:?}", file.display());
        assert_eq!(again.len(), 1, "{}", file.display());
    }
}

#[test]
fn neighbour_cache_files() {
    let data = [0.0f32, 0.0, 1.0, 0.0, 0.0, 3.0];
    let groups = [0u32, 1, 2];
    for file in regressions("knn", Some("knn")) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.knn");
        std::fs::copy(&file, &path).unwrap();
        let nn = knn_cached(&data, 2, 2, &groups, Some(&path));
        assert_eq!(nn.index.len(), 6, "{}", file.display());
        for &j in &nn.index {
            assert!(j == u32::MAX || j < 3, "{}: neighbour {j}", file.display());
        }
    }
}

#[test]
fn image_files() {
    let pp = Preprocess {
        size: 32,
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    for file in regressions("preprocess", None) {
        if let Ok(input) = prepare(&file, &pp) {
            assert_eq!(input.len(), pp.len(), "{}", file.display());
        }
    }
}
