//! The exact search spread over processes (`rank --rows I/N`), for folders too large for
//! one machine's n^2 / 2 distances.
//!
//! Block I of N compares every N-th pair of tiles of the upper triangle, in the exact
//! search's own tiling, so the blocks are balanced and no pair is compared twice. Each
//! pair updates both of its rows' candidate lists, so a block's table has a list for every
//! row; it is written to a file with the key of the rows it searched. `rank --neighbours`
//! reads the N files, checks that they are the N blocks of the same search, merges their
//! tables and refines them as the exact search does. Candidates are ordered totally, by
//! (distance, row), so the merged table is the one a single process keeps and the lists
//! are the exact search's, bit for bit.
//!
//! Layout: magic, key (32 bytes), block and block count (u32 each), rows (u64), list
//! width (u32), the index and distance arrays (little-endian), then BLAKE3 of everything
//! before it.

use super::{MARGIN, Neighbours, Search, TopK, exact_table, refine, squared_norms, tile_pairs};
use crate::scan::Shard;
use crate::store::{knn as knn_cache, write_atomic};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SNOWBLK1";
const HEADER: usize = 8 + 32 + 4 + 4 + 8 + 4;

/// Why row blocks could not be written or merged.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot {action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not a complete row-block file of `snowscope rank --rows` ({why})")]
    Damaged { path: PathBuf, why: &'static str },
    #[error("{path} does not belong to these features: {why}")]
    Foreign { path: PathBuf, why: String },
    #[error("the row blocks do not cover the search: {0}")]
    Coverage(String),
}

/// One block's table, as read back.
struct Block {
    key: [u8; 32],
    part: Shard,
    n: usize,
    width: usize,
    table: TopK,
}

/// The key of a block: the rows, groups and k (the exact search's cache key, so that a
/// block made from other features, other settings or another k is refused).
fn key_of(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> [u8; 32] {
    knn_cache::key(data, dim, k, groups, "exact")
}

/// Searches block `part` of the exact k-NN search of `data` (as `super::knn`) and writes
/// its candidate table to `out`, for `search_cached` to merge with the others (exported as
/// `neighbours::search_block`). Returns the number of tile pairs compared and their total.
pub fn write(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    part: Shard,
    out: &Path,
) -> Result<(usize, usize), BlockError> {
    super::check_input(data, dim, groups);
    let n = groups.len();
    let all = tile_pairs(n);
    let mine: Vec<(usize, usize)> = all
        .iter()
        .enumerate()
        .filter(|(p, _)| p % part.count + 1 == part.index)
        .map(|(_, &pair)| pair)
        .collect();
    let search = Search {
        data,
        dim,
        norms: squared_norms(data, dim, n),
        groups,
    };
    let table = exact_table(&search, n, k + MARGIN, &mine);
    let bytes = encode(&key_of(data, dim, k, groups), part, &table);
    write_atomic(out, &bytes).map_err(|cause| BlockError::Io {
        action: "write",
        path: out.to_path_buf(),
        cause,
    })?;
    Ok((mine.len(), all.len()))
}

/// The exact k-NN lists of `data` from the blocks written by [`write`] in `paths`: every
/// block of one search, each once, made from these rows, groups and k.
pub fn merge(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    paths: &[PathBuf],
) -> Result<Neighbours, BlockError> {
    super::check_input(data, dim, groups);
    let (n, width) = (groups.len(), k + MARGIN);
    let key = key_of(data, dim, k, groups);
    let mut seen: Vec<Option<&Path>> = Vec::new();
    let mut merged: Option<TopK> = None;
    for path in paths {
        let block = read(path)?;
        let foreign = |why: String| BlockError::Foreign {
            path: path.clone(),
            why,
        };
        if block.n != n {
            return Err(foreign(format!(
                "it searched {} rows, these features have {n}",
                block.n
            )));
        }
        if block.width != width {
            return Err(foreign(format!(
                "it kept {} neighbours per row, this ranking needs {k} (--k)",
                block.width - MARGIN
            )));
        }
        if block.key != key {
            return Err(foreign(
                "it was made from other feature values, duplicates or ranking settings \
                 (--profile, --k, --no-normalise, the model or the folder)"
                    .into(),
            ));
        }
        if seen.is_empty() {
            seen = vec![None; block.part.count];
        }
        if block.part.count != seen.len() {
            return Err(BlockError::Coverage(format!(
                "{} is block {}/{} but {} is of {}",
                path.display(),
                block.part.index,
                block.part.count,
                paths[0].display(),
                seen.len()
            )));
        }
        if let Some(first) = seen[block.part.index - 1] {
            return Err(BlockError::Coverage(format!(
                "block {}/{} is given twice: {} and {}",
                block.part.index,
                block.part.count,
                first.display(),
                path.display()
            )));
        }
        seen[block.part.index - 1] = Some(path);
        merged = Some(match merged {
            None => block.table,
            Some(table) => table.merge(block.table),
        });
    }
    let missing: Vec<String> = (1..=seen.len())
        .filter(|i| seen[i - 1].is_none())
        .map(|i| format!("{i}/{}", seen.len()))
        .collect();
    if !missing.is_empty() {
        return Err(BlockError::Coverage(format!(
            "block {} missing (one file per block, from `rank --rows I/N`)",
            missing.join(", ")
        )));
    }
    let table = merged.ok_or_else(|| BlockError::Coverage("no block given".into()))?;
    if k == 0 {
        return Ok(Neighbours::missing(n, k));
    }
    Ok(refine(data, dim, k, &table, |i| i))
}

fn encode(key: &[u8; 32], part: Shard, table: &TopK) -> Vec<u8> {
    let n = table.index.len() / table.k;
    let mut bytes = Vec::with_capacity(HEADER + table.index.len() * 8 + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&(part.index as u32).to_le_bytes());
    bytes.extend_from_slice(&(part.count as u32).to_le_bytes());
    bytes.extend_from_slice(&(n as u64).to_le_bytes());
    bytes.extend_from_slice(&(table.k as u32).to_le_bytes());
    bytes.extend(table.index.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(table.dist.iter().flat_map(|v| v.to_le_bytes()));
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

fn read(path: &Path) -> Result<Block, BlockError> {
    let bytes = std::fs::read(path).map_err(|cause| BlockError::Io {
        action: "read",
        path: path.to_path_buf(),
        cause,
    })?;
    decode(&bytes).map_err(|why| BlockError::Damaged {
        path: path.to_path_buf(),
        why,
    })
}

fn decode(bytes: &[u8]) -> Result<Block, &'static str> {
    if bytes.len() < HEADER + 32 || &bytes[..8] != MAGIC {
        return Err("no block header");
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let (index, count) = (u32_at(40) as usize, u32_at(44) as usize);
    let n = u64::from_le_bytes(bytes[48..56].try_into().expect("8 bytes"));
    let width = u32_at(56) as usize;
    let slots = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(width))
        .ok_or("impossible size")?;
    let body = slots
        .checked_mul(8)
        .and_then(|b| b.checked_add(HEADER))
        .ok_or("impossible size")?;
    if bytes.len() != body + 32 {
        return Err("truncated or extended");
    }
    if blake3::hash(&bytes[..body]).as_bytes() != &bytes[body..] {
        return Err("checksum mismatch");
    }
    if count == 0 || index == 0 || index > count || width == 0 {
        return Err("impossible block numbers");
    }
    let words = |from: usize| {
        bytes[from..from + slots * 4]
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
    };
    let table = TopK {
        k: width,
        index: words(HEADER).map(u32::from_le_bytes).collect(),
        dist: words(HEADER + slots * 4).map(f32::from_le_bytes).collect(),
    };
    let n = n as usize;
    if table
        .index
        .iter()
        .any(|&j| j != u32::MAX && j as usize >= n)
    {
        return Err("a neighbour beyond the rows");
    }
    Ok(Block {
        key: bytes[8..40].try_into().expect("32 bytes"),
        part: Shard { index, count },
        n,
        width,
        table,
    })
}
