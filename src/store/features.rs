//! The feature cache on disk: one safetensors file per (folder, model configuration),
//! holding the feature matrix (one row per distinct image content) and, in its metadata,
//! a serde manifest of the files and a checksum of the matrix.
//!
//! Writes are atomic (`fs::write_atomic`), so a crash, Ctrl-C or a second process never
//! leaves a half-written cache: readers see the old file or the new one. A file that fails
//! its checksum is reported and rebuilt.

use super::write_atomic;
use crate::scan::ScannedFile;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;
const MANIFEST_KEY: &str = "snowscope";
const TENSOR: &str = "features";

/// What the cache knows about one file: when its size and mtime are unchanged, its content
/// hash is reused without reading the file again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub rel: String,
    pub size: u64,
    pub mtime_ns: u128,
    pub hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    root: String,
    model_id: String,
    dim: usize,
    /// Content hash of each matrix row, in row order.
    rows: Vec<String>,
    files: Vec<FileStamp>,
    /// BLAKE3 of the matrix bytes.
    checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache {path} is unreadable or corrupt ({why}); it will be rebuilt")]
    Corrupt { path: PathBuf, why: Corruption },
    #[error("cannot write cache {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("feature rows of {got} values do not match the cache's {want}")]
    Dim { got: usize, want: usize },
}

/// What is wrong with a cache file.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("no manifest")]
    NoManifest,
    #[error("{0}")]
    Manifest(#[from] serde_json::Error),
    #[error("written for another version, folder or model")]
    Foreign,
    #[error("matrix type or shape does not match the manifest")]
    MatrixType,
    #[error("checksum mismatch")]
    Checksum,
    #[error("matrix size does not match the manifest")]
    MatrixSize,
}

/// Feature rows by content hash, for one folder and one model configuration.
#[derive(Debug)]
pub struct FeatureStore {
    /// `None` when caching is off: the store then lives in memory only.
    path: Option<PathBuf>,
    root: String,
    model_id: String,
    dim: usize,
    data: Vec<f32>,
    row_of: HashMap<String, usize>,
    hashes: Vec<String>,
    files: HashMap<String, FileStamp>,
}

impl FeatureStore {
    /// An empty store that is never written to disk (`--no-cache`).
    pub fn in_memory(root: &Path, model_id: &str) -> Self {
        Self {
            path: None,
            root: root.to_string_lossy().into_owned(),
            model_id: model_id.to_string(),
            dim: 0,
            data: Vec::new(),
            row_of: HashMap::new(),
            hashes: Vec::new(),
            files: HashMap::new(),
        }
    }

    /// The cache file for `root` (canonical path) and `model_id` inside `cache_dir`.
    pub fn file_for(cache_dir: &Path, root: &Path, model_id: &str) -> PathBuf {
        let key = format!("{}\n{}", root.to_string_lossy(), model_id);
        let name = &blake3::hash(key.as_bytes()).to_hex()[..24];
        cache_dir.join(format!("{name}.safetensors"))
    }

    /// Opens the cache of `root` in `cache_dir`. A missing file gives an empty store; a
    /// corrupt one gives an empty store and the error that says so (for the user).
    pub fn open(cache_dir: &Path, root: &Path, model_id: &str) -> (Self, Option<StoreError>) {
        let path = Self::file_for(cache_dir, root, model_id);
        let mut store = Self::in_memory(root, model_id);
        store.path = Some(path.clone());
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (store, None),
            Err(e) => {
                let why = Corruption::Io(e);
                return (store, Some(StoreError::Corrupt { path, why }));
            }
        };
        // `load` changes nothing unless every check passes, so a failed load leaves an
        // empty store that will overwrite the bad file.
        match store.load(&bytes) {
            Ok(()) => (store, None),
            Err(why) => (store, Some(StoreError::Corrupt { path, why })),
        }
    }

    /// Fills an empty store from a cache file; on any error the store is left untouched.
    fn load(&mut self, bytes: &[u8]) -> Result<(), Corruption> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(MANIFEST_KEY))
            .ok_or(Corruption::NoManifest)?;
        let manifest: Manifest = serde_json::from_str(json)?;
        if manifest.format != FORMAT
            || manifest.model_id != self.model_id
            || manifest.root != self.root
        {
            return Err(Corruption::Foreign);
        }
        let tensors = safetensors::SafeTensors::deserialize(bytes)?;
        let shape = [manifest.rows.len(), manifest.dim];
        let raw = match tensors.tensor(TENSOR) {
            Ok(view) if view.dtype() == safetensors::Dtype::F32 && view.shape() == shape => {
                view.data().to_vec()
            }
            Ok(_) => return Err(Corruption::MatrixType),
            Err(_) if manifest.rows.is_empty() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if blake3::hash(&raw).to_hex().as_str() != manifest.checksum {
            return Err(Corruption::Checksum);
        }
        // The checksum catches damage, not a file made to pass it: the sizes must agree
        // without overflowing, and stored rows must have a width.
        let bytes_wanted = shape[0]
            .checked_mul(shape[1])
            .and_then(|v| v.checked_mul(4));
        if bytes_wanted != Some(raw.len()) || (shape[1] == 0 && shape[0] > 0) {
            return Err(Corruption::MatrixSize);
        }
        self.dim = manifest.dim;
        self.data = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        self.row_of = manifest
            .rows
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, h)| (h, i))
            .collect();
        self.hashes = manifest.rows;
        self.files = manifest
            .files
            .into_iter()
            .map(|f| (f.rel.clone(), f))
            .collect();
        Ok(())
    }

    /// The cache file, when caching is on.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The remembered content hash of `file`, if its size and mtime are unchanged.
    pub fn known_hash(&self, file: &ScannedFile) -> Option<&str> {
        self.files
            .get(&file.rel)
            .filter(|s| s.size == file.size && s.mtime_ns == file.mtime_ns)
            .map(|s| s.hash.as_str())
    }

    /// Makes `stamps` the folder's file list. Rows no file refers to are dropped at the next save.
    pub fn set_files(&mut self, stamps: Vec<FileStamp>) {
        self.files = stamps.into_iter().map(|f| (f.rel.clone(), f)).collect();
    }

    pub fn get(&self, hash: &str) -> Option<&[f32]> {
        let row = *self.row_of.get(hash)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of stored feature rows.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn insert(&mut self, hash: &str, row: &[f32]) -> Result<(), StoreError> {
        if self.hashes.is_empty() {
            self.dim = row.len();
        } else if row.len() != self.dim {
            return Err(StoreError::Dim {
                got: row.len(),
                want: self.dim,
            });
        }
        if self.row_of.contains_key(hash) {
            return Ok(());
        }
        self.row_of.insert(hash.to_string(), self.hashes.len());
        self.hashes.push(hash.to_string());
        self.data.extend_from_slice(row);
        Ok(())
    }

    /// Drops rows that no current file refers to, keeping the cache the folder's size.
    fn prune(&mut self) {
        let live: std::collections::HashSet<&str> =
            self.files.values().map(|f| f.hash.as_str()).collect();
        if self.hashes.iter().all(|h| live.contains(h.as_str())) {
            return;
        }
        let (mut data, mut hashes) = (Vec::new(), Vec::new());
        for (row, hash) in self.hashes.iter().enumerate() {
            if live.contains(hash.as_str()) {
                data.extend_from_slice(&self.data[row * self.dim..(row + 1) * self.dim]);
                hashes.push(hash.clone());
            }
        }
        self.row_of = hashes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, h)| (h, i))
            .collect();
        self.data = data;
        self.hashes = hashes;
    }

    /// Writes the cache atomically (temp file, fsync, rename). No-op for in-memory stores.
    pub fn save(&mut self) -> Result<(), StoreError> {
        self.prune();
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let bytes: Vec<u8> = self.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut files: Vec<FileStamp> = self.files.values().cloned().collect();
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        let manifest = Manifest {
            format: FORMAT,
            root: self.root.clone(),
            model_id: self.model_id.clone(),
            dim: self.dim,
            rows: self.hashes.clone(),
            files,
            checksum: blake3::hash(&bytes).to_hex().to_string(),
        };
        let json = serde_json::to_string(&manifest).expect("manifest serialises");
        let metadata = HashMap::from([(MANIFEST_KEY.to_string(), json)]);
        let shape = vec![self.hashes.len(), self.dim];
        let tensors = if self.hashes.is_empty() {
            Vec::new()
        } else {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
                .expect("matrix bytes match the shape");
            vec![(TENSOR, view)]
        };
        let encoded = safetensors::tensor::serialize(tensors, Some(metadata)).map_err(|e| {
            StoreError::Write {
                path: path.clone(),
                cause: std::io::Error::other(e),
            }
        })?;
        write_atomic(&path, &encoded).map_err(|cause| StoreError::Write { path, cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(rel: &str, hash: &str) -> FileStamp {
        FileStamp {
            rel: rel.into(),
            size: 1,
            mtime_ns: 2,
            hash: hash.into(),
        }
    }

    #[test]
    fn round_trip_and_prune() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none() && store.is_empty());
        store.insert("h1", &[1.0, 2.0]).unwrap();
        store.insert("h2", &[3.0, 4.0]).unwrap();
        assert!(store.insert("h3", &[1.0]).is_err());
        store.set_files(vec![stamp("a.png", "h2")]);
        store.save().unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("h2"), Some(&[3.0, 4.0][..]));
        let file = ScannedFile {
            path: "/photos/a.png".into(),
            rel: "a.png".into(),
            size: 1,
            mtime_ns: 2,
        };
        assert_eq!(store.known_hash(&file), Some("h2"));
        let touched = ScannedFile {
            mtime_ns: 3,
            ..file
        };
        assert_eq!(store.known_hash(&touched), None);
        // Another model configuration has its own file.
        assert!(FeatureStore::open(cache.path(), root, "other").0.is_empty());
    }

    #[test]
    fn corruption_is_detected() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        store.insert("h1", &[1.0, 2.0, 3.0, 4.0]).unwrap();
        store.set_files(vec![stamp("a.png", "h1")]);
        store.save().unwrap();
        let path = FeatureStore::file_for(cache.path(), root, "m");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40; // flip a bit of the matrix
        fs::write(&path, &bytes).unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(matches!(err, Some(StoreError::Corrupt { .. })));
        assert!(store.is_empty());
        fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        assert!(FeatureStore::open(cache.path(), root, "m").1.is_some());
    }
}
