//! The feature cache on disk: one safetensors file per (folder, model configuration),
//! holding two matrices, one row per distinct image content: the model's features and the
//! image's traits; then a serde manifest of the files and rows with a checksum of each
//! matrix, as a third tensor of bytes (at a million images it is 200 MB, over what the
//! safetensors readers accept as a header), whose own checksum the header's metadata holds.
//!
//! The file is memory-mapped, not read: a warm start at a million rows (6 GB of features)
//! reads the manifest and the traits (68 MB, checked at once), and the features only if a
//! ranking needs them, checked against their checksum on that first use
//! ([`FeatureStore::verified`]). A folder whose neighbour lists are cached never reads them.
//!
//! Writes are atomic (`fs::write_atomic_with`, streamed a row at a time), so a crash,
//! Ctrl-C or a second process never leaves a half-written cache: readers see the old file
//! or the new one, and a mapped file is never changed under its reader (a save renames a
//! new file over it). A file that fails a check is reported and rebuilt.

use super::write_atomic_with;
use crate::scan::ScannedFile;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Version 2: features and traits in two matrices, the file memory-mapped.
const FORMAT: u32 = 2;
const METADATA_KEY: &str = "snowscope";
const FEATURES: &str = "features";
const TRAITS: &str = "traits";
const MANIFEST: &str = "manifest";

/// The header's metadata: which format, and the manifest's checksum.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    manifest_checksum: String,
}

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
    /// Features per row.
    dim: usize,
    /// Traits per row.
    traits: usize,
    /// Content hash of each matrix row, in row order.
    rows: Vec<String>,
    files: Vec<FileStamp>,
    /// BLAKE3 of the features' bytes, then of the traits' bytes.
    checksum: String,
    traits_checksum: String,
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
#[derive(Debug, Clone, thiserror::Error)]
pub enum Corruption {
    #[error("{0}")]
    Io(std::sync::Arc<std::io::Error>),
    #[error("{0}")]
    Safetensors(std::sync::Arc<safetensors::SafeTensorError>),
    #[error("no manifest")]
    NoManifest,
    #[error("{0}")]
    Manifest(std::sync::Arc<serde_json::Error>),
    #[error("written for another version, folder or model")]
    Foreign,
    #[error("matrix type or shape does not match the manifest")]
    MatrixType,
    #[error("checksum mismatch")]
    Checksum,
    #[error("matrix size does not match the manifest")]
    MatrixSize,
}

impl From<safetensors::SafeTensorError> for Corruption {
    fn from(e: safetensors::SafeTensorError) -> Self {
        Corruption::Safetensors(e.into())
    }
}

impl From<serde_json::Error> for Corruption {
    fn from(e: serde_json::Error) -> Self {
        Corruption::Manifest(e.into())
    }
}

/// The features of the rows as the file holds them, mapped, not read.
#[derive(Debug)]
struct Mapped {
    map: memmap2::Mmap,
    /// Byte range of the features in the map (f32, little-endian, 4-byte aligned).
    start: usize,
    rows: usize,
    checksum: String,
    traits_checksum: String,
    /// The outcome of comparing the bytes with `checksum`, once asked.
    verified: OnceLock<Result<(), Corruption>>,
}

impl Mapped {
    fn features(&self) -> &[f32] {
        let bytes = &self.map[self.start..];
        // SAFETY: `open` checked that the range holds `rows * dim` f32 values inside the
        // map, 4-byte aligned, on a little-endian machine; every bit pattern is an f32. The
        // map is read-only and this program never writes a cache file in place (a save
        // renames a new file over it), so the bytes do not change under the slice.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
    }

    fn verify(&self, values: usize) -> Result<(), Corruption> {
        self.verified
            .get_or_init(|| {
                let bytes = &self.map[self.start..self.start + values * 4];
                let mut hasher = blake3::Hasher::new();
                hasher.update_rayon(bytes);
                match hasher.finalize().to_hex().as_str() == self.checksum {
                    true => Ok(()),
                    false => Err(Corruption::Checksum),
                }
            })
            .clone()
    }
}

/// Feature rows by content hash, for one folder and one model configuration.
#[derive(Debug)]
pub struct FeatureStore {
    /// `None` when caching is off: the store then lives in memory only.
    path: Option<PathBuf>,
    root: String,
    model_id: String,
    dim: usize,
    traits_dim: usize,
    /// Rows `0..mapped.rows` as the file holds them.
    mapped: Option<Mapped>,
    /// The features of the rows after the mapped ones (all of them without a file).
    added: Vec<f32>,
    traits: Vec<f32>,
    row_of: HashMap<String, usize>,
    hashes: Vec<String>,
    files: HashMap<String, FileStamp>,
    /// Something differs from the file: rows added or dropped, or other file stamps.
    changed: bool,
}

/// The features of a store's rows, once checked against the file's checksum.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedRows<'a> {
    store: &'a FeatureStore,
}

impl<'a> VerifiedRows<'a> {
    /// The features of store row `row`.
    pub fn features(&self, row: usize) -> &'a [f32] {
        self.store.features_unchecked(row)
    }
}

impl FeatureStore {
    /// An empty store that is never written to disk (`--no-cache`).
    pub fn in_memory(root: &Path, model_id: &str) -> Self {
        Self {
            path: None,
            root: root.to_string_lossy().into_owned(),
            model_id: model_id.to_string(),
            dim: 0,
            traits_dim: 0,
            mapped: None,
            added: Vec::new(),
            traits: Vec::new(),
            row_of: HashMap::default(),
            hashes: Vec::new(),
            files: HashMap::default(),
            changed: false,
        }
    }

    /// The cache file for `root` (canonical path) and `model_id` inside `cache_dir`.
    pub fn file_for(cache_dir: &Path, root: &Path, model_id: &str) -> PathBuf {
        let key = format!("{}\n{}", root.to_string_lossy(), model_id);
        let name = &blake3::hash(key.as_bytes()).to_hex()[..24];
        cache_dir.join(format!("{name}.safetensors"))
    }

    /// Opens the cache of `root` in `cache_dir`. A missing file gives an empty store; a
    /// corrupt one gives an empty store and the error that says so (for the user). The
    /// features are checked on first use ([`Self::verified`]), everything else here.
    pub fn open(cache_dir: &Path, root: &Path, model_id: &str) -> (Self, Option<StoreError>) {
        let path = Self::file_for(cache_dir, root, model_id);
        let mut store = Self::in_memory(root, model_id);
        store.path = Some(path.clone());
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (store, None),
            Err(e) => {
                let why = Corruption::Io(e.into());
                return (store, Some(StoreError::Corrupt { path, why }));
            }
        };
        // SAFETY: see `Mapped::features`: cache files are replaced, never written in place.
        let map = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => map,
            Err(e) => {
                let why = Corruption::Io(e.into());
                return (store, Some(StoreError::Corrupt { path, why }));
            }
        };
        // `load` changes nothing unless every check passes, so a failed load leaves an
        // empty store that will overwrite the bad file.
        match store.load(map) {
            Ok(()) => (store, None),
            Err(why) => (store, Some(StoreError::Corrupt { path, why })),
        }
    }

    /// Fills an empty store from a mapped cache file; on any error the store is left
    /// untouched.
    fn load(&mut self, map: memmap2::Mmap) -> Result<(), Corruption> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(&map)?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or(Corruption::NoManifest)?;
        let header: Header = serde_json::from_str(json)?;
        if header.format != FORMAT {
            return Err(Corruption::Foreign);
        }
        let tensors = safetensors::SafeTensors::deserialize(&map)?;
        let manifest = match tensors.tensor(MANIFEST) {
            Ok(view) if view.dtype() == safetensors::Dtype::U8 => view.data(),
            Ok(_) => return Err(Corruption::MatrixType),
            Err(_) => return Err(Corruption::NoManifest),
        };
        if blake3::hash(manifest).to_hex().as_str() != header.manifest_checksum {
            return Err(Corruption::Checksum);
        }
        let manifest: Manifest = serde_json::from_slice(manifest)?;
        if manifest.format != FORMAT
            || manifest.model_id != self.model_id
            || manifest.root != self.root
        {
            return Err(Corruption::Foreign);
        }
        let n = manifest.rows.len();
        // The checksums catch damage, not a file made to pass them: the sizes must agree
        // without overflowing, and stored rows must have a width.
        let values = |dim: usize| n.checked_mul(dim).filter(|v| v.checked_mul(4).is_some());
        let (Some(features), Some(traits)) = (values(manifest.dim), values(manifest.traits)) else {
            return Err(Corruption::MatrixSize);
        };
        if n > 0 && manifest.dim == 0 {
            return Err(Corruption::MatrixSize);
        }
        let matrix = |name: &str, dim: usize, values: usize| -> Result<&[u8], Corruption> {
            match tensors.tensor(name) {
                Ok(view) if view.dtype() == safetensors::Dtype::F32 && view.shape() == [n, dim] => {
                    match view.data().len() == values * 4 {
                        true => Ok(view.data()),
                        false => Err(Corruption::MatrixSize),
                    }
                }
                Ok(_) => Err(Corruption::MatrixType),
                Err(_) if n == 0 => Ok(&[]),
                Err(e) => Err(e.into()),
            }
        };
        let feature_bytes = matrix(FEATURES, manifest.dim, features)?;
        let trait_bytes = matrix(TRAITS, manifest.traits, traits)?;
        if blake3::hash(trait_bytes).to_hex().as_str() != manifest.traits_checksum {
            return Err(Corruption::Checksum);
        }
        // The features are used in place: they must be aligned f32 values of this machine's
        // byte order (this program writes them so).
        let start = feature_bytes.as_ptr() as usize - map.as_ptr() as usize;
        if !feature_bytes.as_ptr().cast::<f32>().is_aligned() || cfg!(target_endian = "big") {
            return Err(Corruption::MatrixType);
        }
        self.dim = manifest.dim;
        self.traits_dim = manifest.traits;
        self.traits = trait_bytes
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
        self.mapped = Some(Mapped {
            map,
            start,
            rows: n,
            checksum: manifest.checksum,
            traits_checksum: manifest.traits_checksum,
            verified: OnceLock::new(),
        });
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
        let same = stamps.len() == self.files.len()
            && stamps.iter().all(|s| self.files.get(&s.rel) == Some(s));
        if !same {
            self.files = stamps.into_iter().map(|f| (f.rel.clone(), f)).collect();
            self.changed = true;
        }
    }

    /// The row that holds the content `hash`.
    pub fn row_of(&self, hash: &str) -> Option<usize> {
        self.row_of.get(hash).copied()
    }

    /// The traits of row `row`.
    pub fn traits(&self, row: usize) -> &[f32] {
        &self.traits[row * self.traits_dim..(row + 1) * self.traits_dim]
    }

    /// The features, checked against the file's checksum on the first call (the same
    /// answer after that). An error means the file was damaged since it was written: its
    /// rows cannot be used, and [`Self::discard`] makes the next run rebuild it.
    pub fn verified(&self) -> Result<VerifiedRows<'_>, StoreError> {
        if let Some(mapped) = &self.mapped {
            mapped
                .verify(mapped.rows * self.dim)
                .map_err(|why| StoreError::Corrupt {
                    path: self.path.clone().unwrap_or_default(),
                    why,
                })?;
        }
        Ok(VerifiedRows { store: self })
    }

    /// Stands for the values of every row, without reading them: the checksums of the file
    /// the rows were read from. `None` when rows were added or dropped since (nothing on
    /// disk then says what they hold).
    pub fn fingerprint(&self) -> Option<String> {
        let mapped = self.mapped.as_ref()?;
        let unchanged = mapped.rows == self.hashes.len() && self.added.is_empty();
        unchanged.then(|| format!("{} {}", mapped.checksum, mapped.traits_checksum))
    }

    /// Removes the cache file, so that the next run extracts every image again (after
    /// [`Self::verified`] found it damaged).
    pub fn discard(&self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }

    fn features_unchecked(&self, row: usize) -> &[f32] {
        let (values, row) = match &self.mapped {
            Some(m) if row < m.rows => (m.features(), row),
            Some(m) => (&self.added[..], row - m.rows),
            None => (&self.added[..], row),
        };
        &values[row * self.dim..(row + 1) * self.dim]
    }

    /// Features per row.
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

    /// Stores the `features` and `traits` of the content `hash` (kept if already there).
    pub fn insert(
        &mut self,
        hash: &str,
        features: &[f32],
        traits: &[f32],
    ) -> Result<(), StoreError> {
        if self.hashes.is_empty() {
            self.dim = features.len();
            self.traits_dim = traits.len();
        } else if features.len() != self.dim || traits.len() != self.traits_dim {
            return Err(StoreError::Dim {
                got: features.len() + traits.len(),
                want: self.dim + self.traits_dim,
            });
        }
        if self.row_of.contains_key(hash) {
            return Ok(());
        }
        self.row_of.insert(hash.to_string(), self.hashes.len());
        self.hashes.push(hash.to_string());
        self.added.extend_from_slice(features);
        self.traits.extend_from_slice(traits);
        self.changed = true;
        Ok(())
    }

    /// Writes the cache atomically (temp file, fsync, rename), the rows that a current file
    /// refers to only. No-op for in-memory stores and when nothing changed since it was
    /// read. Rows read from the file are checked first: a damaged file is not carried over
    /// under a new checksum.
    pub fn save(&mut self) -> Result<(), StoreError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        let rows = self.verified()?;
        let live: foldhash::HashSet<&str> = self.files.values().map(|f| f.hash.as_str()).collect();
        let kept: Vec<usize> = (0..self.hashes.len())
            .filter(|&r| live.contains(self.hashes[r].as_str()))
            .collect();
        let mut features = blake3::Hasher::new();
        let mut traits = blake3::Hasher::new();
        for &r in &kept {
            features.update(&le_bytes(rows.features(r)));
            traits.update(&le_bytes(self.traits(r)));
        }
        let mut files: Vec<FileStamp> = self.files.values().cloned().collect();
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        let manifest = Manifest {
            format: FORMAT,
            root: self.root.clone(),
            model_id: self.model_id.clone(),
            dim: self.dim,
            traits: self.traits_dim,
            rows: kept.iter().map(|&r| self.hashes[r].clone()).collect(),
            files,
            checksum: features.finalize().to_hex().to_string(),
            traits_checksum: traits.finalize().to_hex().to_string(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let header = safetensors_header(&manifest, kept.len(), &manifest_bytes);
        write_atomic_with(&path, |out| {
            out.write_all(&header)?;
            for &r in &kept {
                out.write_all(&le_bytes(rows.features(r)))?;
            }
            for &r in &kept {
                out.write_all(&le_bytes(self.traits(r)))?;
            }
            out.write_all(&manifest_bytes)
        })
        .map_err(|cause| StoreError::Write {
            path: path.clone(),
            cause,
        })?;
        // Read back what was written: the rows are mapped again and the memory that held
        // the added ones is freed.
        let (reopened, problem) = Self::reopen(&path, &self.root, &self.model_id);
        match problem {
            None => *self = reopened,
            Some(why) => return Err(StoreError::Corrupt { path, why }),
        }
        Ok(())
    }

    fn reopen(path: &Path, root: &str, model_id: &str) -> (Self, Option<Corruption>) {
        let mut store = Self::in_memory(Path::new(root), model_id);
        store.path = Some(path.to_path_buf());
        let loaded = fs::File::open(path)
            // SAFETY: see `Mapped::features`.
            .and_then(|file| unsafe { memmap2::Mmap::map(&file) })
            .map_err(|e| Corruption::Io(e.into()))
            .and_then(|map| store.load(map));
        // Rows just written are the ones in memory a moment ago: no need to check them.
        if let Some(mapped) = &store.mapped {
            let _ = mapped.verified.set(Ok(()));
        }
        (store, loaded.err())
    }
}

/// The little-endian bytes of `values`.
fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The safetensors header of a cache file of `rows` rows and the serialised `manifest`:
/// its length, then the JSON that names the three tensors and holds the metadata, padded
/// with spaces so that the matrices start 8-byte aligned (as the safetensors format
/// recommends, and as mapping them needs).
fn safetensors_header(manifest: &Manifest, rows: usize, manifest_bytes: &[u8]) -> Vec<u8> {
    let metadata = Header {
        format: FORMAT,
        manifest_checksum: blake3::hash(manifest_bytes).to_hex().to_string(),
    };
    let metadata = serde_json::to_string(&metadata).expect("header serialises");
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ METADATA_KEY: metadata }),
    );
    let mut offset = 0;
    let mut tensor = |name: &str, dtype: &str, shape: &[usize], bytes: usize| {
        let range = [offset, offset + bytes];
        header.insert(
            name.into(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": range}),
        );
        offset += bytes;
    };
    if rows > 0 {
        tensor(
            FEATURES,
            "F32",
            &[rows, manifest.dim],
            rows * manifest.dim * 4,
        );
        tensor(
            TRAITS,
            "F32",
            &[rows, manifest.traits],
            rows * manifest.traits * 4,
        );
    }
    tensor(
        MANIFEST,
        "U8",
        &[manifest_bytes.len()],
        manifest_bytes.len(),
    );
    let mut json = serde_json::to_vec(&header).expect("header serialises");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes
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

    fn features_of<'a>(store: &'a FeatureStore, hash: &str) -> &'a [f32] {
        let row = store.row_of(hash).unwrap();
        store.verified().unwrap().features(row)
    }

    #[test]
    fn round_trip_and_prune() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none() && store.is_empty());
        store.insert("h1", &[1.0, 2.0], &[9.0]).unwrap();
        store.insert("h2", &[3.0, 4.0], &[8.0]).unwrap();
        assert!(store.insert("h3", &[1.0], &[7.0]).is_err());
        assert!(store.insert("h3", &[1.0, 2.0], &[]).is_err());
        assert_eq!(store.fingerprint(), None, "added rows are on no disk yet");
        store.set_files(vec![stamp("a.png", "h2")]);
        store.save().unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(store.len(), 1);
        assert_eq!(features_of(&store, "h2"), [3.0, 4.0]);
        assert_eq!(store.traits(store.row_of("h2").unwrap()), [8.0]);
        assert!(store.fingerprint().is_some());
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
    fn rows_added_to_a_mapped_file_are_saved_with_it_and_an_unchanged_store_writes_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        store.insert("h1", &[1.0, 2.0], &[9.0]).unwrap();
        store.set_files(vec![stamp("a.png", "h1")]);
        store.save().unwrap();
        let saved = store.fingerprint().unwrap();
        let path = FeatureStore::file_for(cache.path(), root, "m");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        fs::remove_file(&path).unwrap();
        store.set_files(vec![stamp("a.png", "h1")]);
        store.save().unwrap();
        assert!(!path.exists(), "nothing changed, nothing written");
        store.insert("h2", &[3.0, 4.0], &[8.0]).unwrap();
        store.set_files(vec![stamp("a.png", "h1"), stamp("b.png", "h2")]);
        store.save().unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(features_of(&store, "h1"), [1.0, 2.0]);
        assert_eq!(features_of(&store, "h2"), [3.0, 4.0]);
        assert_ne!(store.fingerprint().unwrap(), saved);
    }

    #[test]
    fn corruption_is_detected() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        store.insert("h1", &[1.0, 2.0, 3.0, 4.0], &[5.0]).unwrap();
        store.set_files(vec![stamp("a.png", "h1")]);
        store.save().unwrap();
        let path = FeatureStore::file_for(cache.path(), root, "m");
        let good = fs::read(&path).unwrap();
        let data = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let flipped = |at: usize| {
            let mut bytes = good.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
        };
        // The traits (after the 4 features) and the manifest (at the end) are checked at
        // once: a flipped bit empties the store.
        for at in [data + 16, good.len() - 1] {
            flipped(at);
            let (store, err) = FeatureStore::open(cache.path(), root, "m");
            assert!(matches!(err, Some(StoreError::Corrupt { .. })), "{at}");
            assert!(store.is_empty());
        }
        // The features are checked on first use, and the store refuses to save them.
        flipped(data + 4);
        let (mut store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none() && store.len() == 1);
        assert!(matches!(store.verified(), Err(StoreError::Corrupt { .. })));
        store.set_files(vec![stamp("b.png", "h1")]);
        assert!(
            store.save().is_err(),
            "a damaged file is not saved under a new checksum"
        );
        store.discard();
        assert!(!path.exists());
        fs::write(&path, &good[..good.len() / 3]).unwrap();
        assert!(FeatureStore::open(cache.path(), root, "m").1.is_some());
    }
}
