//! The neighbour-list cache: a `.knn` file beside the feature cache, holding the k-NN lists
//! of a folder with a key of everything they depend on (data, groups, k, the search's
//! method and settings: lists from the index are never read back as exact ones, nor the
//! other way round). The search itself is `neighbours`; this module only reads and writes
//! the lists, and the search's report (text) beside them.
//!
//! Layout: magic, key, the report's length (u32) and bytes, then the index and distance
//! arrays (little-endian), then BLAKE3 of everything before it.

use super::write_atomic;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bumped whenever the search may give different lists for the same input (version 2:
/// candidate margin and f64 refinement; 3: the search method in the key, and its report),
/// so that old caches are recomputed.
const MAGIC: &[u8; 8] = b"SNOWKNN3";

/// Values hashed per call of the hasher.
const PIECE: usize = 1 << 14;

/// The neighbour cache that belongs to the feature cache file `features`.
pub fn file_beside(features: &Path) -> PathBuf {
    features.with_extension("knn")
}

/// The key of the lists of `data` (n x `dim`), `groups` and `k`, found by the search that
/// `method` describes.
pub fn key(data: &[f32], dim: usize, k: usize, groups: &[u32], method: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(method.len() as u64).to_le_bytes());
    hasher.update(method.as_bytes());
    hasher.update(&(dim as u64).to_le_bytes());
    hasher.update(&(k as u64).to_le_bytes());
    // The same bytes as one `update` per value, handed over in large pieces: per-value
    // calls cost more than the hashing (seconds at a million rows).
    let mut piece = Vec::with_capacity(4 * PIECE);
    for chunk in groups.chunks(PIECE) {
        piece.clear();
        piece.extend(chunk.iter().flat_map(|g| g.to_le_bytes()));
        hasher.update(&piece);
    }
    for chunk in data.chunks(PIECE) {
        piece.clear();
        piece.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        hasher.update(&piece);
    }
    *hasher.finalize().as_bytes()
}

/// Lists as stored: (index, squared distance, both row-major; the search's report).
pub type Lists = (Vec<u32>, Vec<f32>, String);

/// The lists stored in `path` for `key`, `n` rows and `k` neighbours. `None` when the file
/// is missing, stale or damaged.
pub fn load(path: &Path, key: &[u8; 32], n: usize, k: usize) -> Option<Lists> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| decode(&bytes, key, n, k))
}

/// Writes the lists and the search's `report` atomically to `path`.
pub fn save(
    path: &Path,
    key: &[u8; 32],
    index: &[u32],
    dist2: &[f32],
    report: &str,
) -> std::io::Result<()> {
    write_atomic(path, &encode(index, dist2, key, report))
}

fn encode(index: &[u32], dist2: &[f32], key: &[u8; 32], report: &str) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&(report.len() as u32).to_le_bytes());
    bytes.extend_from_slice(report.as_bytes());
    bytes.extend(index.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(dist2.iter().flat_map(|v| v.to_le_bytes()));
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

fn decode(bytes: &[u8], key: &[u8; 32], n: usize, k: usize) -> Option<Lists> {
    if bytes.len() < 44 || &bytes[..8] != MAGIC || &bytes[8..40] != key {
        return None;
    }
    let report_len = u32::from_le_bytes(bytes[40..44].try_into().ok()?) as usize;
    let lists = 44usize.checked_add(report_len)?;
    let body_len = lists.checked_add(n.checked_mul(k)?.checked_mul(8)?)?;
    if bytes.len() != body_len.checked_add(32)? {
        return None;
    }
    if blake3::hash(&bytes[..body_len]).as_bytes() != &bytes[body_len..] {
        return None;
    }
    let report = String::from_utf8(bytes[44..lists].to_vec()).ok()?;
    let words = |range: Range<usize>| {
        bytes[range]
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
    };
    let index: Vec<u32> = words(lists..lists + n * k * 4)
        .map(u32::from_le_bytes)
        .collect();
    // The checksum catches damage, not a file made to pass it: every row must exist.
    if index.iter().any(|&j| j != u32::MAX && j as usize >= n) {
        return None;
    }
    let dist2 = words(lists + n * k * 4..body_len)
        .map(f32::from_le_bytes)
        .collect();
    Some((index, dist2, report))
}
