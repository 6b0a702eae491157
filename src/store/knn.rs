//! The neighbour-list cache: a `.knn` file beside the feature cache, holding the k-NN lists
//! of a folder with a key of everything they depend on (data, groups, k, the search's
//! method and settings: lists from the index are never read back as exact ones, nor the
//! other way round). The search itself is `neighbours`; this module only reads and writes
//! the lists, and the search's report (text) beside them.
//!
//! Layout: magic, key, the report's length (u32) and bytes, then the index, distance and
//! duplicate-group arrays (little-endian), then BLAKE3 of everything before it. The groups
//! are kept so that a ranking can be made from the file alone, without the rows (a warm
//! start keyed by [`key_of_rows`]).

use super::write_atomic;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bumped whenever the search may give different lists for the same input (version 2:
/// candidate margin and f64 refinement; 3: the search method in the key, and its report;
/// 4: the duplicate groups), so that old caches are recomputed.
const MAGIC: &[u8; 8] = b"SNOWKNN4";

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

/// The key of the lists of rows that `rows` stands for (a key made without reading them:
/// see `pipeline`'s warm start), `dim` wide, with `k` and `method` as in [`key`].
pub fn key_of_rows(rows: &[u8; 32], dim: usize, k: usize, method: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"rows");
    hasher.update(rows);
    hasher.update(&(method.len() as u64).to_le_bytes());
    hasher.update(method.as_bytes());
    hasher.update(&(dim as u64).to_le_bytes());
    hasher.update(&(k as u64).to_le_bytes());
    *hasher.finalize().as_bytes()
}

/// Lists as stored: index and squared distance (both row-major, n x k), the duplicate
/// group of each row, and the search's report.
#[derive(Debug)]
pub struct Lists {
    pub index: Vec<u32>,
    pub dist2: Vec<f32>,
    pub groups: Vec<u32>,
    pub report: String,
}

/// The lists stored in `path` for `key`, `n` rows and `k` neighbours. `None` when the file
/// is missing, stale or damaged.
pub fn load(path: &Path, key: &[u8; 32], n: usize, k: usize) -> Option<Lists> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| decode(&bytes, key, n, k))
}

/// Writes `lists` atomically to `path`.
pub fn save(path: &Path, key: &[u8; 32], lists: &Lists) -> std::io::Result<()> {
    write_atomic(path, &encode(lists, key))
}

fn encode(lists: &Lists, key: &[u8; 32]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&(lists.report.len() as u32).to_le_bytes());
    bytes.extend_from_slice(lists.report.as_bytes());
    bytes.extend(lists.index.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(lists.dist2.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(lists.groups.iter().flat_map(|v| v.to_le_bytes()));
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
    let groups = lists.checked_add(n.checked_mul(k)?.checked_mul(8)?)?;
    let body_len = groups.checked_add(n.checked_mul(4)?)?;
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
    let dist2 = words(lists + n * k * 4..groups)
        .map(f32::from_le_bytes)
        .collect();
    let groups: Vec<u32> = words(groups..body_len).map(u32::from_le_bytes).collect();
    if groups.iter().any(|&g| g as usize >= n) {
        return None;
    }
    Some(Lists {
        index,
        dist2,
        groups,
        report,
    })
}
