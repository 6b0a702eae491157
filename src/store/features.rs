//! The feature cache on disk: one safetensors file per (folder, model configuration),
//! holding two matrices, one row per distinct image content: the model's features and the
//! image's traits; then the manifest (the content hash of each row, and the folder's files
//! with their stamps and rows) as a third tensor of bytes, in columns (`file_table.rs`),
//! whose counts and checksum the header's metadata holds with the matrices' checksums.
//! Format 2 kept the manifest as JSON (200 MB at a million files, seconds to parse); such a
//! file is still read, and written again in format 3 by the next save.
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

use super::file_table::{Digest, FileTable, Malformed, NO_ROW, digest_of, hex_of};
use super::write_atomic_with;
use crate::scan::ScannedFile;
use foldhash::HashMap;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Version 3: the manifest in binary columns (version 2, JSON, is still read).
const FORMAT: u32 = 3;
const JSON_FORMAT: u32 = 2;
const METADATA_KEY: &str = "snowscope";
const FEATURES: &str = "features";
const TRAITS: &str = "traits";
const MANIFEST: &str = "manifest";

/// The header's metadata: which format, what the manifest holds and every checksum.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    root: String,
    model_id: String,
    /// Features per row.
    dim: usize,
    /// Traits per row.
    traits: usize,
    rows: usize,
    files: usize,
    /// Bytes of the files' paths in the manifest.
    names: usize,
    /// BLAKE3 of the features' bytes, of the traits' bytes and of the manifest's.
    checksum: String,
    traits_checksum: String,
    manifest_checksum: String,
}

/// The header's metadata in format 2: the manifest is JSON.
#[derive(Debug, Deserialize)]
struct JsonHeader {
    manifest_checksum: String,
}

/// One file of a format-2 manifest.
#[derive(Debug, Deserialize)]
struct JsonStamp {
    rel: String,
    size: u64,
    mtime_ns: u128,
    hash: String,
}

#[derive(Debug, Deserialize)]
struct JsonManifest {
    format: u32,
    root: String,
    model_id: String,
    dim: usize,
    traits: usize,
    rows: Vec<String>,
    files: Vec<JsonStamp>,
    checksum: String,
    traits_checksum: String,
}

/// How a cache file holds the features: as the model gives them (f32), or as IEEE half
/// floats (f16: half the disk and the page cache; 11 significant bits). Traits are always
/// f32. Rows stored as f16 are rounded when they are added, so a ranking made before the
/// save reads the values every later one will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePrecision {
    #[default]
    F32,
    F16,
}

impl CachePrecision {
    fn bytes(self) -> usize {
        match self {
            CachePrecision::F32 => 4,
            CachePrecision::F16 => 2,
        }
    }

    fn dtype(self) -> safetensors::Dtype {
        match self {
            CachePrecision::F32 => safetensors::Dtype::F32,
            CachePrecision::F16 => safetensors::Dtype::F16,
        }
    }
}

/// What the cache knows about one file, as it is given to [`FeatureStore::set_files`]:
/// when its size and mtime are unchanged, its content hash is reused without reading the
/// file again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp<'a> {
    pub rel: &'a str,
    pub size: u64,
    pub mtime_ns: u128,
    /// The content hash in hex, as `scan::content_hash` gives it.
    pub hash: &'a str,
}

/// A scanned file the cache recognises by its stamp: its content hash (hex) and, when its
/// content has one, its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub hash: String,
    pub row: Option<usize>,
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
    #[error("'{0}' is not a content hash (64 hex digits)")]
    Hash(String),
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
    #[error("malformed manifest: {0:?}")]
    Malformed(Malformed),
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

impl From<Malformed> for Corruption {
    fn from(e: Malformed) -> Self {
        Corruption::Malformed(e)
    }
}

/// The features of the rows as the file holds them, mapped, not read.
#[derive(Debug)]
struct Mapped {
    map: memmap2::Mmap,
    /// Where the features start in the map (little-endian, aligned to their type).
    start: usize,
    precision: CachePrecision,
    rows: usize,
    checksum: String,
    traits_checksum: String,
    /// The outcome of comparing the bytes with `checksum`, once asked.
    verified: OnceLock<Result<(), Corruption>>,
}

impl Mapped {
    /// The features of an f32 file.
    fn features(&self) -> &[f32] {
        debug_assert_eq!(self.precision, CachePrecision::F32);
        let bytes = &self.map[self.start..];
        // SAFETY: `open` checked that the range holds `rows * dim` f32 values inside the
        // map, 4-byte aligned, on a little-endian machine; every bit pattern is an f32. The
        // map is read-only and this program never writes a cache file in place (a save
        // renames a new file over it), so the bytes do not change under the slice.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
    }

    /// The features of an f16 file.
    fn half_features(&self) -> &[f16] {
        debug_assert_eq!(self.precision, CachePrecision::F16);
        let bytes = &self.map[self.start..];
        // SAFETY: as in `features`, for 2-byte aligned f16 values (a `u16` each, every bit
        // pattern valid).
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f16>(), bytes.len() / 2) }
    }

    fn verify(&self, values: usize) -> Result<(), Corruption> {
        self.verified
            .get_or_init(|| {
                let size = values * self.precision.bytes();
                let bytes = &self.map[self.start..self.start + size];
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

/// What a cache file's manifest says, in either format, before the matrices are checked.
struct Contents {
    dim: usize,
    traits: usize,
    row_hashes: Vec<Digest>,
    files: FileTable,
    checksum: String,
    traits_checksum: String,
    /// Read from format 2: the next save writes it again in the current format.
    outdated: bool,
}

/// Feature rows by content hash, for one folder and one model configuration.
#[derive(Debug)]
pub struct FeatureStore {
    /// `None` when caching is off: the store then lives in memory only.
    path: Option<PathBuf>,
    root: String,
    model_id: String,
    /// How the file holds the features (added rows are rounded to it).
    precision: CachePrecision,
    dim: usize,
    traits_dim: usize,
    /// Rows `0..mapped.rows` as the file holds them.
    mapped: Option<Mapped>,
    /// The features of the rows after the mapped ones (all of them without a file).
    added: Vec<f32>,
    traits: Vec<f32>,
    /// The content hash of each row.
    hashes: Vec<Digest>,
    /// The row of each content hash, made when first asked: a warm start finds its rows
    /// through the file table and never needs it.
    row_of: OnceLock<HashMap<Digest, u32>>,
    files: FileTable,
    /// Something differs from the file: rows added or dropped, other file stamps, or an
    /// older format.
    changed: bool,
}

/// The features of a store's rows, once checked against the file's checksum.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedRows<'a> {
    store: &'a FeatureStore,
}

impl<'a> VerifiedRows<'a> {
    /// The features of store row `row`: borrowed from the file where it holds f32,
    /// converted where it holds f16.
    pub fn features(&self, row: usize) -> Cow<'a, [f32]> {
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
            precision: CachePrecision::F32,
            dim: 0,
            traits_dim: 0,
            mapped: None,
            added: Vec::new(),
            traits: Vec::new(),
            hashes: Vec::new(),
            row_of: OnceLock::new(),
            files: FileTable::default(),
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
        Self::open_as(cache_dir, root, model_id, CachePrecision::F32)
    }

    /// [`Self::open`] for a cache that holds the features at `precision` (which the
    /// caller's `model_id` must tell apart: a file of the other precision is refused).
    pub fn open_as(
        cache_dir: &Path,
        root: &Path,
        model_id: &str,
        precision: CachePrecision,
    ) -> (Self, Option<StoreError>) {
        let path = Self::file_for(cache_dir, root, model_id);
        let mut store = Self::in_memory(root, model_id);
        store.precision = precision;
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

    /// The manifest of a format-3 file.
    fn contents(&self, header: Header, manifest: &[u8]) -> Result<Contents, Corruption> {
        if header.root != self.root || header.model_id != self.model_id {
            return Err(Corruption::Foreign);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(manifest);
        if hasher.finalize().to_hex().as_str() != header.manifest_checksum {
            return Err(Corruption::Checksum);
        }
        let (row_hashes, files) =
            FileTable::decode(manifest, header.rows, header.files, header.names)?;
        Ok(Contents {
            dim: header.dim,
            traits: header.traits,
            row_hashes,
            files,
            checksum: header.checksum,
            traits_checksum: header.traits_checksum,
            outdated: false,
        })
    }

    /// The manifest of a format-2 file (JSON), in the current form.
    fn json_contents(&self, header: JsonHeader, manifest: &[u8]) -> Result<Contents, Corruption> {
        if blake3::hash(manifest).to_hex().as_str() != header.manifest_checksum {
            return Err(Corruption::Checksum);
        }
        let manifest: JsonManifest = serde_json::from_slice(manifest)?;
        if manifest.format != JSON_FORMAT
            || manifest.model_id != self.model_id
            || manifest.root != self.root
        {
            return Err(Corruption::Foreign);
        }
        let digest = |hex: &str| digest_of(hex).ok_or(Corruption::Foreign);
        let row_hashes = manifest
            .rows
            .iter()
            .map(|h| digest(h))
            .collect::<Result<Vec<_>, _>>()?;
        let row_of: HashMap<Digest, u32> = row_hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32))
            .collect();
        let mut stamps = manifest.files;
        stamps.sort_by(|a, b| a.rel.cmp(&b.rel));
        stamps.dedup_by(|a, b| a.rel == b.rel);
        let mut files = FileTable::default();
        for f in stamps {
            let hash = digest(&f.hash)?;
            let row = row_of.get(&hash).copied().unwrap_or(NO_ROW);
            files.push(&f.rel, f.size, f.mtime_ns, hash, row);
        }
        Ok(Contents {
            dim: manifest.dim,
            traits: manifest.traits,
            row_hashes,
            files,
            checksum: manifest.checksum,
            traits_checksum: manifest.traits_checksum,
            outdated: true,
        })
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
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format = serde_json::from_str::<Format>(json)?.format;
        let tensors = safetensors::SafeTensors::deserialize(&map)?;
        let manifest = match tensors.tensor(MANIFEST) {
            Ok(view) if view.dtype() == safetensors::Dtype::U8 => view.data(),
            Ok(_) => return Err(Corruption::MatrixType),
            Err(_) => return Err(Corruption::NoManifest),
        };
        let contents = match format {
            FORMAT => self.contents(serde_json::from_str(json)?, manifest)?,
            JSON_FORMAT => self.json_contents(serde_json::from_str(json)?, manifest)?,
            _ => return Err(Corruption::Foreign),
        };
        let n = contents.row_hashes.len();
        // The checksums catch damage, not a file made to pass them: the sizes must agree
        // without overflowing, and stored rows must have a width.
        let values = |dim: usize| n.checked_mul(dim).filter(|v| v.checked_mul(4).is_some());
        let precision = self.precision;
        let (Some(features), Some(traits)) = (values(contents.dim), values(contents.traits)) else {
            return Err(Corruption::MatrixSize);
        };
        if n > 0 && contents.dim == 0 {
            return Err(Corruption::MatrixSize);
        }
        let matrix = |name: &str,
                      dim: usize,
                      values: usize,
                      precision: CachePrecision|
         -> Result<&[u8], Corruption> {
            match tensors.tensor(name) {
                Ok(view) if view.dtype() == precision.dtype() && view.shape() == [n, dim] => {
                    match view.data().len() == values * precision.bytes() {
                        true => Ok(view.data()),
                        false => Err(Corruption::MatrixSize),
                    }
                }
                Ok(_) => Err(Corruption::MatrixType),
                Err(_) if n == 0 => Ok(&[]),
                Err(e) => Err(e.into()),
            }
        };
        let feature_bytes = matrix(FEATURES, contents.dim, features, precision)?;
        let trait_bytes = matrix(TRAITS, contents.traits, traits, CachePrecision::F32)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(trait_bytes);
        if hasher.finalize().to_hex().as_str() != contents.traits_checksum {
            return Err(Corruption::Checksum);
        }
        // The features are used in place: they must be aligned values of this machine's
        // byte order (this program writes them so). A file of no rows has no matrix: its
        // empty slice lies outside the map, and nothing is read from it.
        let start = match feature_bytes.is_empty() {
            true => 0,
            false => feature_bytes.as_ptr() as usize - map.as_ptr() as usize,
        };
        if !start.is_multiple_of(precision.bytes()) || cfg!(target_endian = "big") {
            return Err(Corruption::MatrixType);
        }
        self.dim = contents.dim;
        self.traits_dim = contents.traits;
        self.traits = trait_bytes
            .par_chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        self.hashes = contents.row_hashes;
        self.files = contents.files;
        self.changed = contents.outdated;
        self.mapped = Some(Mapped {
            map,
            start,
            precision,
            rows: n,
            checksum: contents.checksum,
            traits_checksum: contents.traits_checksum,
            verified: OnceLock::new(),
        });
        Ok(())
    }

    /// The cache file, when caching is on.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The remembered content hash of `file`, if its size and mtime are unchanged.
    pub fn known_hash(&self, file: &ScannedFile) -> Option<String> {
        self.recognise(std::slice::from_ref(file))
            .pop()
            .flatten()
            .map(|r| r.hash)
    }

    /// What the cache remembers of each of `files` whose size and mtime are unchanged.
    /// Files sorted by path (as `scan` lists them) are matched in one merge.
    pub fn recognise(&self, files: &[ScannedFile]) -> Vec<Option<Recognised>> {
        let mut cursor = 0;
        let entries: Vec<Option<usize>> = files
            .iter()
            .map(|f| {
                self.files.find(&f.rel, &mut cursor).filter(|&i| {
                    let entry = self.files.get(i);
                    entry.size == f.size && entry.mtime_ns == f.mtime_ns
                })
            })
            .collect();
        entries
            .into_par_iter()
            .map(|i| Some(self.remembered(i?)))
            .collect()
    }

    /// The files the list holds, in path order, each as `recognise` would find it: the
    /// folder as the cache last saw it.
    pub fn listed(&self) -> Vec<(&str, Recognised)> {
        (0..self.files.len())
            .into_par_iter()
            .map(|i| (self.files.get(i).rel, self.remembered(i)))
            .collect()
    }

    /// What the cache remembers of the list's file `i`.
    fn remembered(&self, i: usize) -> Recognised {
        let entry = self.files.get(i);
        let row = match entry.row {
            NO_ROW => self.row_of_digest(entry.hash),
            row => Some(row as usize),
        };
        Recognised {
            hash: hex_of(entry.hash),
            row,
        }
    }

    /// Whether `known`, what `recognise` made of a scan, recognises every file the list
    /// holds and nothing else: the folder is as the list has it, which `set_files` would
    /// only find again (at a million files, in a quarter of a second).
    pub fn lists_exactly(&self, known: &[Option<Recognised>]) -> bool {
        // The scan's paths are distinct, so the files recognised are distinct entries.
        known.len() == self.files.len() && known.iter().all(Option::is_some)
    }

    /// Makes `stamps` the folder's file list. Rows no file refers to are dropped at the next
    /// save. A stamp whose hash is not a content hash is left out (its file is read again
    /// next time).
    pub fn set_files<'a>(&mut self, stamps: impl IntoIterator<Item = FileStamp<'a>>) {
        let mut stamps: Vec<(FileStamp, Digest)> = stamps
            .into_iter()
            .filter_map(|s| Some((s, digest_of(s.hash)?)))
            .collect();
        if !stamps.is_sorted_by(|a, b| a.0.rel < b.0.rel) {
            stamps.sort_by(|a, b| a.0.rel.cmp(b.0.rel));
            stamps.dedup_by(|a, b| a.0.rel == b.0.rel);
        }
        let same = stamps.len() == self.files.len()
            && stamps.iter().zip(self.files.iter()).all(|((s, hash), f)| {
                (s.rel, s.size, s.mtime_ns, hash) == (f.rel, f.size, f.mtime_ns, f.hash)
            });
        if same {
            return;
        }
        let mut files = FileTable::default();
        for (s, hash) in stamps {
            let row = self.row_of_digest(&hash).map_or(NO_ROW, |r| r as u32);
            files.push(s.rel, s.size, s.mtime_ns, hash, row);
        }
        self.files = files;
        self.changed = true;
    }

    fn index(&self) -> &HashMap<Digest, u32> {
        self.row_of.get_or_init(|| {
            let mut map = HashMap::with_capacity_and_hasher(self.hashes.len(), Default::default());
            map.extend(self.hashes.iter().enumerate().map(|(i, h)| (*h, i as u32)));
            map
        })
    }

    fn row_of_digest(&self, hash: &Digest) -> Option<usize> {
        self.index().get(hash).map(|&r| r as usize)
    }

    /// The row that holds the content `hash` (hex).
    pub fn row_of(&self, hash: &str) -> Option<usize> {
        self.row_of_digest(&digest_of(hash)?)
    }

    /// `row_of`, looking at `guess` first (a row found earlier, which a save since may have
    /// moved): a million rows found again without a hash map.
    pub fn row_of_near(&self, hash: &str, guess: Option<usize>) -> Option<usize> {
        let digest = digest_of(hash)?;
        match guess {
            Some(row) if self.hashes.get(row) == Some(&digest) => Some(row),
            _ => self.row_of_digest(&digest),
        }
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

    fn features_unchecked(&self, row: usize) -> Cow<'_, [f32]> {
        let columns = |row: usize| row * self.dim..(row + 1) * self.dim;
        match &self.mapped {
            Some(m) if row < m.rows => match m.precision {
                CachePrecision::F32 => Cow::Borrowed(&m.features()[columns(row)]),
                CachePrecision::F16 => Cow::Owned(m.half_features()[columns(row)].to_f32_vec()),
            },
            Some(m) => Cow::Borrowed(&self.added[columns(row - m.rows)]),
            None => Cow::Borrowed(&self.added[columns(row)]),
        }
    }

    /// Row `row`'s features as the file holds them, in little-endian bytes.
    fn stored_bytes(&self, row: usize) -> Vec<u8> {
        match self.precision {
            CachePrecision::F32 => le_bytes(&self.features_unchecked(row)),
            CachePrecision::F16 => match &self.mapped {
                Some(m) if row < m.rows => {
                    let start = m.start + row * self.dim * 2;
                    m.map[start..start + self.dim * 2].to_vec()
                }
                _ => self
                    .features_unchecked(row)
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                    .collect(),
            },
        }
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

    /// Stores the `features` and `traits` of the content `hash` (hex; kept if already there).
    pub fn insert(
        &mut self,
        hash: &str,
        features: &[f32],
        traits: &[f32],
    ) -> Result<(), StoreError> {
        let digest = digest_of(hash).ok_or_else(|| StoreError::Hash(hash.to_string()))?;
        if self.hashes.is_empty() {
            self.dim = features.len();
            self.traits_dim = traits.len();
        } else if features.len() != self.dim || traits.len() != self.traits_dim {
            return Err(StoreError::Dim {
                got: features.len() + traits.len(),
                want: self.dim + self.traits_dim,
            });
        }
        if self.row_of_digest(&digest).is_some() {
            return Ok(());
        }
        let row = self.hashes.len() as u32;
        if let Some(index) = self.row_of.get_mut() {
            index.insert(digest, row);
        }
        self.hashes.push(digest);
        match self.precision {
            CachePrecision::F32 => self.added.extend_from_slice(features),
            CachePrecision::F16 => self
                .added
                .extend(features.iter().map(|&v| f16::from_f32(v).to_f32())),
        }
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
        self.verified()?;
        // The rows some file refers to, in row order, and their new numbers.
        let mut new_row = vec![NO_ROW; self.hashes.len()];
        for f in self.files.iter() {
            if let Some(r) = self.row_of_digest(f.hash) {
                new_row[r] = 0;
            }
        }
        let kept: Vec<usize> = (0..self.hashes.len())
            .filter(|&r| new_row[r] != NO_ROW)
            .collect();
        for (i, &r) in kept.iter().enumerate() {
            new_row[r] = i as u32;
        }
        let files = self
            .files
            .renumbered(|hash| Some(new_row[self.row_of_digest(hash)?]));
        let row_hashes: Vec<Digest> = kept.iter().map(|&r| self.hashes[r]).collect();
        let manifest = files.encode(&row_hashes);
        let mut features = blake3::Hasher::new();
        let mut traits = blake3::Hasher::new();
        for &r in &kept {
            features.update(&self.stored_bytes(r));
            traits.update(&le_bytes(self.traits(r)));
        }
        let header = Header {
            format: FORMAT,
            root: self.root.clone(),
            model_id: self.model_id.clone(),
            dim: self.dim,
            traits: self.traits_dim,
            rows: kept.len(),
            files: files.len(),
            names: files.names_len(),
            checksum: features.finalize().to_hex().to_string(),
            traits_checksum: traits.finalize().to_hex().to_string(),
            manifest_checksum: blake3::hash(&manifest).to_hex().to_string(),
        };
        let header_bytes = safetensors_header(&header, self.precision, manifest.len());
        write_atomic_with(&path, |out| {
            out.write_all(&header_bytes)?;
            for &r in &kept {
                out.write_all(&self.stored_bytes(r))?;
            }
            for &r in &kept {
                out.write_all(&le_bytes(self.traits(r)))?;
            }
            out.write_all(&manifest)
        })
        .map_err(|cause| StoreError::Write {
            path: path.clone(),
            cause,
        })?;
        // Read back what was written: the rows are mapped again and the memory that held
        // the added ones is freed.
        let (reopened, problem) = Self::reopen(&path, &self.root, &self.model_id, self.precision);
        match problem {
            None => *self = reopened,
            Some(why) => return Err(StoreError::Corrupt { path, why }),
        }
        Ok(())
    }

    fn reopen(
        path: &Path,
        root: &str,
        model_id: &str,
        precision: CachePrecision,
    ) -> (Self, Option<Corruption>) {
        let mut store = Self::in_memory(Path::new(root), model_id);
        store.precision = precision;
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

/// The safetensors header of a cache file described by `meta` with a manifest of
/// `manifest_len` bytes: its length, then the JSON that names the three tensors and holds
/// the metadata, padded with spaces so that the matrices start 8-byte aligned (as the
/// safetensors format recommends, and as mapping them needs).
fn safetensors_header(meta: &Header, precision: CachePrecision, manifest_len: usize) -> Vec<u8> {
    let metadata = serde_json::to_string(meta).expect("header serialises");
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ METADATA_KEY: metadata }),
    );
    let mut offset = 0;
    let mut tensor = |name: &str, dtype: safetensors::Dtype, shape: &[usize], bytes: usize| {
        let range = [offset, offset + bytes];
        header.insert(
            name.into(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": range}),
        );
        offset += bytes;
    };
    let rows = meta.rows;
    if rows > 0 {
        let features = rows * meta.dim * precision.bytes();
        tensor(FEATURES, precision.dtype(), &[rows, meta.dim], features);
        let traits = CachePrecision::F32;
        let trait_bytes = rows * meta.traits * traits.bytes();
        tensor(TRAITS, traits.dtype(), &[rows, meta.traits], trait_bytes);
    }
    tensor(
        MANIFEST,
        safetensors::Dtype::U8,
        &[manifest_len],
        manifest_len,
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

    fn stamp<'a>(rel: &'a str, hash: &'a str) -> FileStamp<'a> {
        FileStamp {
            rel,
            size: 1,
            mtime_ns: 2,
            hash,
        }
    }

    /// A content hash (hex) standing for content `n`.
    fn h(n: u8) -> String {
        blake3::hash(&[n]).to_hex().to_string()
    }

    fn features_of(store: &FeatureStore, hash: &str) -> Vec<f32> {
        let row = store.row_of(hash).unwrap();
        store.verified().unwrap().features(row).into_owned()
    }

    #[test]
    fn round_trip_and_prune() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none() && store.is_empty());
        store.insert(&h(1), &[1.0, 2.0], &[9.0]).unwrap();
        store.insert(&h(2), &[3.0, 4.0], &[8.0]).unwrap();
        assert!(store.insert(&h(3), &[1.0], &[7.0]).is_err());
        assert!(store.insert(&h(3), &[1.0, 2.0], &[]).is_err());
        assert_eq!(store.fingerprint(), None, "added rows are on no disk yet");
        store.set_files(vec![stamp("a.png", &h(2))]);
        store.save().unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(store.len(), 1);
        assert_eq!(features_of(&store, &h(2)), [3.0, 4.0]);
        assert_eq!(store.traits(store.row_of(&h(2)).unwrap()), [8.0]);
        assert!(store.fingerprint().is_some());
        let file = ScannedFile {
            path: "/photos/a.png".into(),
            rel: "a.png".into(),
            size: 1,
            mtime_ns: 2,
        };
        assert_eq!(store.known_hash(&file), Some(h(2)));
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
        store.insert(&h(1), &[1.0, 2.0], &[9.0]).unwrap();
        store.set_files(vec![stamp("a.png", &h(1))]);
        store.save().unwrap();
        let saved = store.fingerprint().unwrap();
        let path = FeatureStore::file_for(cache.path(), root, "m");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        fs::remove_file(&path).unwrap();
        store.set_files(vec![stamp("a.png", &h(1))]);
        store.save().unwrap();
        assert!(!path.exists(), "nothing changed, nothing written");
        store.insert(&h(2), &[3.0, 4.0], &[8.0]).unwrap();
        store.set_files(vec![stamp("a.png", &h(1)), stamp("b.png", &h(2))]);
        store.save().unwrap();
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(features_of(&store, &h(1)), [1.0, 2.0]);
        assert_eq!(features_of(&store, &h(2)), [3.0, 4.0]);
        assert_ne!(store.fingerprint().unwrap(), saved);
    }

    #[test]
    fn half_precision_rows_are_rounded_once_and_kept_through_saves() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let half = CachePrecision::F16;
        let open = || FeatureStore::open_as(cache.path(), root, "m-f16", half);
        let (mut store, _) = open();
        // 0.1 is not a half float: the row reads its rounding at once, before any save.
        let rounded = [f16::from_f32(0.1).to_f32(), 2.0, -3.5];
        assert_ne!(rounded[0], 0.1);
        store.insert(&h(1), &[0.1, 2.0, -3.5], &[9.0]).unwrap();
        assert_eq!(features_of(&store, &h(1)), rounded);
        store.set_files(vec![stamp("a.png", &h(1))]);
        store.save().unwrap();
        let path = FeatureStore::file_for(cache.path(), root, "m-f16");
        // A second row added to the mapped f16 file, saved again: both come back as added.
        let (mut store, err) = open();
        assert!(err.is_none());
        assert_eq!(features_of(&store, &h(1)), rounded);
        store
            .insert(&h(2), &[1.0, 1.0 / 3.0, 1e-3], &[8.0])
            .unwrap();
        store.set_files(vec![stamp("a.png", &h(1)), stamp("b.png", &h(2))]);
        store.save().unwrap();
        let (store, err) = open();
        assert!(err.is_none());
        assert_eq!(features_of(&store, &h(1)), rounded);
        let second = features_of(&store, &h(2));
        assert!((second[1] - 1.0 / 3.0).abs() < 1e-3 && second[1] != 1.0 / 3.0);
        assert_eq!(store.traits(store.row_of(&h(2)).unwrap()), [8.0]);
        // The file holds two bytes a value.
        let bytes = fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let features = file.tensor(FEATURES).unwrap();
        assert_eq!(features.dtype(), safetensors::Dtype::F16);
        assert_eq!(features.data().len(), 2 * 3 * 2);
        // The same file opened as f32 is refused (and would be rebuilt), not misread.
        let (store, err) = FeatureStore::open(cache.path(), root, "m-f16");
        assert!(store.is_empty());
        assert!(matches!(
            err,
            Some(StoreError::Corrupt {
                why: Corruption::MatrixType,
                ..
            })
        ));
    }

    #[test]
    fn a_saved_cache_of_no_rows_is_opened_and_grown() {
        // A folder whose files all failed: the file lists them, holds no matrix (a found
        // crash: the features' place was then taken from an empty slice outside the map).
        for precision in [CachePrecision::F32, CachePrecision::F16] {
            let cache = tempfile::tempdir().unwrap();
            let root = Path::new("/photos");
            let open = || FeatureStore::open_as(cache.path(), root, "m", precision);
            let (mut store, _) = open();
            store.set_files(vec![stamp("broken.png", &h(9))]);
            store.save().unwrap();
            let (mut store, err) = open();
            assert!(err.is_none() && store.is_empty(), "{err:?}");
            assert!(store.verified().is_ok());
            store.insert(&h(1), &[1.0, 2.0], &[9.0]).unwrap();
            store.set_files(vec![stamp("a.png", &h(1))]);
            store.save().unwrap();
            let (store, err) = open();
            assert!(err.is_none());
            assert_eq!(features_of(&store, &h(1)), [1.0, 2.0]);
        }
    }

    #[test]
    fn corruption_is_detected() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        store.insert(&h(1), &[1.0, 2.0, 3.0, 4.0], &[5.0]).unwrap();
        store.set_files(vec![stamp("a.png", &h(1))]);
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
        store.set_files(vec![stamp("b.png", &h(1))]);
        assert!(
            store.save().is_err(),
            "a damaged file is not saved under a new checksum"
        );
        store.discard();
        assert!(!path.exists());
        fs::write(&path, &good[..good.len() / 3]).unwrap();
        assert!(FeatureStore::open(cache.path(), root, "m").1.is_some());
    }

    /// A cache file as format 2 wrote it: the manifest as JSON.
    fn format_2_file(rows: &[(String, f32)], files: &[(&str, &str)]) -> Vec<u8> {
        let manifest = serde_json::json!({
            "format": 2, "root": "/photos", "model_id": "m", "dim": 1, "traits": 1,
            "rows": rows.iter().map(|r| &r.0).collect::<Vec<_>>(),
            "files": files.iter().map(|(rel, hash)| serde_json::json!(
                {"rel": rel, "size": 1, "mtime_ns": 2, "hash": hash})).collect::<Vec<_>>(),
            "checksum": blake3::hash(&le_bytes(&rows.iter().map(|r| r.1).collect::<Vec<_>>()))
                .to_hex().to_string(),
            "traits_checksum": blake3::hash(&le_bytes(&vec![0.0; rows.len()])).to_hex().to_string(),
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let header = serde_json::json!({"format": 2,
            "manifest_checksum": blake3::hash(&manifest).to_hex().to_string()});
        let n = rows.len();
        let json = serde_json::json!({
            "__metadata__": {METADATA_KEY: header.to_string()},
            FEATURES: {"dtype": "F32", "shape": [n, 1], "data_offsets": [0, 4 * n]},
            TRAITS: {"dtype": "F32", "shape": [n, 1], "data_offsets": [4 * n, 8 * n]},
            MANIFEST: {"dtype": "U8", "shape": [manifest.len()],
                "data_offsets": [8 * n, 8 * n + manifest.len()]},
        });
        let mut json = serde_json::to_vec(&json).unwrap();
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        rows.iter().for_each(|r| bytes.extend(r.1.to_le_bytes()));
        rows.iter().for_each(|_| bytes.extend(0f32.to_le_bytes()));
        bytes.extend_from_slice(&manifest);
        bytes
    }

    #[test]
    fn a_format_2_cache_is_read_and_written_again_in_format_3() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let path = FeatureStore::file_for(cache.path(), root, "m");
        let rows = [(h(1), 1.0), (h(2), 2.0)];
        // Unsorted, as format 2 could hold them.
        fs::write(
            &path,
            format_2_file(&rows, &[("b.png", &h(2)), ("a.png", &h(1))]),
        )
        .unwrap();
        let (mut store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none(), "{err:?}");
        let scanned = |rel: &str| ScannedFile {
            path: root.join(rel),
            rel: rel.into(),
            size: 1,
            mtime_ns: 2,
        };
        let known = store.recognise(&[scanned("a.png"), scanned("b.png"), scanned("c.png")]);
        let want = |n: u8, row| {
            Some(Recognised {
                hash: h(n),
                row: Some(row),
            })
        };
        assert_eq!(known, [want(1, 0), want(2, 1), None]);
        assert!(!store.lists_exactly(&known), "c.png is new");
        let both = store.recognise(&[scanned("a.png"), scanned("b.png")]);
        assert!(store.lists_exactly(&both));
        assert!(!store.lists_exactly(&both[1..]), "a.png is gone");
        let listed: Vec<(&str, Recognised)> = vec![
            ("a.png", want(1, 0).unwrap()),
            ("b.png", want(2, 1).unwrap()),
        ];
        assert_eq!(store.listed(), listed);
        assert_eq!(features_of(&store, &h(2)), [2.0]);
        let fingerprint = store.fingerprint();
        store.save().unwrap();
        let bytes = fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let header: Header =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
        assert_eq!((header.format, header.rows, header.files), (FORMAT, 2, 2));
        let (store, err) = FeatureStore::open(cache.path(), root, "m");
        assert!(err.is_none());
        assert_eq!(store.fingerprint(), fingerprint, "same rows, same lists");
        assert_eq!(store.recognise(&[scanned("b.png")]), [want(2, 1)]);
    }

    #[test]
    fn rows_found_before_a_save_are_found_again_after_it() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/photos");
        let (mut store, _) = FeatureStore::open(cache.path(), root, "m");
        store.insert(&h(1), &[1.0], &[]).unwrap();
        store.insert(&h(2), &[2.0], &[]).unwrap();
        assert_eq!(store.row_of_near(&h(2), Some(1)), Some(1));
        assert!(matches!(
            store.insert("h3", &[3.0], &[]),
            Err(StoreError::Hash(_))
        ));
        // Content 1 is no file's any more: the save drops its row, and content 2 moves.
        store.set_files(vec![stamp("b.png", &h(2))]);
        store.save().unwrap();
        assert_eq!(store.row_of_near(&h(2), Some(1)), Some(0));
        assert_eq!(store.row_of_near(&h(1), Some(0)), None);
    }
}
