//! The cache loaders must turn any file into either a usable store or an error, never a
//! panic, abort or runaway allocation: the feature cache (safetensors with a binary
//! manifest, format 3, or a JSON one, format 2) and the neighbour-list cache beside it.
//!
//! Random bytes rarely get past a header, a JSON parser and a BLAKE3 checksum, so besides
//! raw bytes the input can describe a well-formed file whose manifest and matrix are
//! fuzzed and whose checksum is right: that reaches the checks after the checksum.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use snowscope::neighbours::knn_cached;
use snowscope::scan::ScannedFile;
use snowscope::store::{CachePrecision, FeatureStore, FileStamp};
use std::path::Path;

const ROOT: &str = "/photos";
const MODEL: &str = "fuzz-model";

#[derive(Arbitrary, Debug)]
struct Stamp {
    rel: String,
    size: u64,
    mtime_ns: u64,
    hash: String,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any bytes as the feature cache file.
    Raw(Vec<u8>),
    /// A safetensors file with a fuzzed manifest and matrix.
    Structured {
        format: u8,
        other_root: bool,
        dim: u64,
        traits: u64,
        rows: Vec<String>,
        files: Vec<Stamp>,
        /// Tensor dtype name index and shape as written in the header.
        dtype: u8,
        shape: Vec<u32>,
        data: Vec<u8>,
        /// Bytes of the traits matrix.
        trait_data: Vec<u8>,
        right_checksum: bool,
        /// Drops the tensor from the file.
        no_tensor: bool,
    },
    /// A format-3 file: the header's counts and the manifest's bytes fuzzed, every checksum
    /// right, so that the manifest's own checks are reached.
    Binary {
        rows: u16,
        files: u16,
        names: u32,
        dim: u8,
        traits: u8,
        manifest: Vec<u8>,
        data: Vec<u8>,
        /// Features declared F16 (as `--cache-precision f16` writes them), else F32.
        half: bool,
    },
    /// Any bytes as the neighbour-list cache of a 3-image set.
    KnnRaw(Vec<u8>),
    /// A neighbour-list cache with the right magic, key and checksum but fuzzed lists.
    KnnBody(Vec<u8>),
}

fn safetensors_file(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    bytes
}

fn feature_cache(input: Input) -> Option<Vec<u8>> {
    Some(match input {
        Input::Raw(bytes) => bytes,
        Input::Structured {
            format,
            other_root,
            dim,
            traits,
            rows,
            files,
            dtype,
            shape,
            data,
            trait_data,
            right_checksum,
            no_tensor,
        } => {
            let checksum = |bytes: &[u8]| {
                if right_checksum {
                    blake3::hash(bytes).to_hex().to_string()
                } else {
                    "0".repeat(64)
                }
            };
            let manifest = serde_json::json!({
                "format": format % 3,
                "root": if other_root { "/elsewhere" } else { ROOT },
                "model_id": MODEL,
                "dim": dim,
                "traits": traits,
                "rows": rows,
                "files": files.iter().map(|f| serde_json::json!({
                    "rel": f.rel, "size": f.size, "mtime_ns": f.mtime_ns, "hash": f.hash,
                })).collect::<Vec<_>>(),
                "checksum": checksum(&data),
                "traits_checksum": checksum(&trait_data),
            })
            .to_string();
            let metadata = serde_json::json!({
                "format": format % 3,
                "manifest_checksum": checksum(manifest.as_bytes()),
            });
            let dtypes = ["F32", "U8", "F16", "I64", "BOOL"];
            let mut header = serde_json::json!({
                "__metadata__": { "snowscope": metadata.to_string() },
            });
            let mut body = Vec::new();
            let mut tensor = |name: &str, dtype: &str, shape: serde_json::Value, bytes: &[u8]| {
                header[name] = serde_json::json!({
                    "dtype": dtype,
                    "shape": shape,
                    "data_offsets": [body.len(), body.len() + bytes.len()],
                });
                body.extend_from_slice(bytes);
            };
            if !no_tensor {
                let dtype = dtypes[dtype as usize % dtypes.len()];
                tensor("features", dtype, serde_json::json!(shape), &data);
                let trait_shape = serde_json::json!([rows.len(), traits]);
                tensor("traits", "F32", trait_shape, &trait_data);
            }
            let manifest_len = serde_json::json!([manifest.len()]);
            tensor("manifest", "U8", manifest_len, manifest.as_bytes());
            safetensors_file(&header, &body)
        }
        Input::Binary {
            rows,
            files,
            names,
            dim,
            traits,
            manifest,
            data,
            half,
        } => {
            let (rows, dim, traits) = (rows as usize, dim as usize, traits as usize);
            let dtype = if half { "F16" } else { "F32" };
            let trait_data = vec![0u8; rows * traits * 4];
            let hex = |bytes: &[u8]| blake3::hash(bytes).to_hex().to_string();
            let metadata = serde_json::json!({
                "format": 3, "root": ROOT, "model_id": MODEL, "dim": dim, "traits": traits,
                "rows": rows, "files": files, "names": names,
                "checksum": hex(&data), "traits_checksum": hex(&trait_data),
                "manifest_checksum": hex(&manifest),
            });
            let features = [0, data.len()];
            let traits_at = [data.len(), data.len() + trait_data.len()];
            let manifest_at = [traits_at[1], traits_at[1] + manifest.len()];
            let header = serde_json::json!({
                "__metadata__": { "snowscope": metadata.to_string() },
                "features": {"dtype": dtype, "shape": [rows, dim], "data_offsets": features},
                "traits": {"dtype": "F32", "shape": [rows, traits], "data_offsets": traits_at},
                "manifest": {"dtype": "U8", "shape": [manifest.len()], "data_offsets": manifest_at},
            });
            let body = [data, trait_data, manifest].concat();
            safetensors_file(&header, &body)
        }
        _ => return None,
    })
}

/// With `SNOWSCOPE_FUZZ_DUMP=FILE`, the cache file made from an input is written there:
/// how a crashing input becomes a regression file for `tests/fuzz_regressions.rs`.
fn dump(bytes: &[u8]) {
    if let Some(out) = std::env::var_os("SNOWSCOPE_FUZZ_DUMP") {
        std::fs::write(out, bytes).unwrap();
    }
}

/// Opens a cache file as an f32 and as an f16 cache and uses the store the way the
/// pipeline does.
fn exercise_store(bytes: &[u8]) {
    dump(bytes);
    for precision in [CachePrecision::F32, CachePrecision::F16] {
        exercise_store_as(bytes, precision);
    }
}

fn exercise_store_as(bytes: &[u8], precision: CachePrecision) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(ROOT);
    let path = FeatureStore::file_for(dir.path(), root, MODEL);
    std::fs::write(&path, bytes).unwrap();
    let (mut store, err) = FeatureStore::open_as(dir.path(), root, MODEL, precision);
    if err.is_some() {
        assert!(store.is_empty(), "a rejected cache leaves an empty store");
        return;
    }
    // Whatever was accepted must be usable: every file's row has the store's width.
    let dim = store.dim();
    let manifest = read_manifest(bytes);
    for hash in manifest.iter().flat_map(|m| m.0.iter()) {
        if let (Some(row), Ok(rows)) = (store.row_of(hash), store.verified()) {
            assert_eq!(rows.features(row).len(), dim);
        }
    }
    for f in manifest.iter().flat_map(|m| m.1.iter()) {
        let scanned = ScannedFile {
            path: root.join(&f.rel),
            rel: f.rel.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
        };
        if let Some(hash) = store.known_hash(&scanned)
            && let (Some(row), Ok(rows)) = (store.row_of(&hash), store.verified())
        {
            let _ = rows.features(row);
        }
    }
    // A new row of the right width is accepted when rows are non-empty.
    let width = if store.is_empty() { 4 } else { dim };
    let traits = if store.is_empty() { 0 } else { store.traits(0).len() };
    let new_row = blake3::hash(b"fuzz-new-row").to_hex();
    store.insert(&new_row, &vec![0.5; width], &vec![0.25; traits]).unwrap();
    store.set_files(vec![FileStamp {
        rel: "new.png",
        size: 1,
        mtime_ns: 1,
        hash: &new_row,
    }]);
    store.save().unwrap();
    let (again, err) = FeatureStore::open_as(dir.path(), root, MODEL, precision);
    assert!(err.is_none(), "a saved cache reopens: {err:?}");
    assert_eq!(again.len(), 1);
    let row = again.row_of(&new_row).expect("the new row is kept");
    assert_eq!(again.verified().unwrap().features(row).len(), width);
}

/// A file of a JSON manifest.
#[derive(serde::Deserialize)]
struct JsonStamp {
    rel: String,
    size: u64,
    mtime_ns: u128,
}

/// The row hashes and file stamps a JSON manifest (format 2) names, if it parses.
fn read_manifest(bytes: &[u8]) -> Option<(Vec<String>, Vec<JsonStamp>)> {
    let tensors = safetensors::SafeTensors::deserialize(bytes).ok()?;
    let manifest = tensors.tensor("manifest").ok()?;
    let value: serde_json::Value = serde_json::from_slice(manifest.data()).ok()?;
    let rows = serde_json::from_value(value.get("rows")?.clone()).ok()?;
    let files = serde_json::from_value(value.get("files")?.clone()).ok()?;
    Some((rows, files))
}

/// Three 2-d points in two groups: the neighbour cache of a tiny set.
fn exercise_knn(file: Option<Vec<u8>>, body: Option<Vec<u8>>) {
    let data = [0.0f32, 0.0, 1.0, 0.0, 0.0, 3.0];
    let groups = [0u32, 1, 2];
    let (n, k) = (3, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.knn");
    let bytes = match (file, body) {
        (Some(bytes), _) => bytes,
        (None, Some(body)) => {
            // A genuine file gives the magic, the key and the report; the lists and
            // checksum are ours.
            let _ = knn_cached(&data, 2, k, &groups, Some(&path));
            let genuine = std::fs::read(&path).unwrap();
            // The lists and the duplicate groups.
            let lists = n * k * 8 + n * 4;
            let head = genuine.len() - lists - 32;
            let mut bytes = genuine[..head].to_vec();
            bytes.extend(body.iter().copied().cycle().take(lists));
            bytes.resize(head + lists, 0);
            let checksum = blake3::hash(&bytes);
            bytes.extend_from_slice(checksum.as_bytes());
            bytes
        }
        (None, None) => return,
    };
    dump(&bytes);
    std::fs::write(&path, &bytes).unwrap();
    let nn = knn_cached(&data, 2, k, &groups, Some(&path));
    assert_eq!(nn.k, k);
    assert_eq!(nn.index.len(), n * k);
    assert_eq!(nn.dist2.len(), n * k);
    for &j in &nn.index {
        assert!(
            j == u32::MAX || (j as usize) < n,
            "neighbour {j} of {n} rows"
        );
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::KnnRaw(bytes) => exercise_knn(Some(bytes), None),
        Input::KnnBody(body) => exercise_knn(None, Some(body)),
        other => {
            if let Some(bytes) = feature_cache(other) {
                exercise_store(&bytes);
            }
        }
    }
});
