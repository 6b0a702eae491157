//! Sharded extraction: `features DIR --shard I/N --out part_I.npy` extracts a stable,
//! disjoint 1/N of a folder on one machine (a job-array task, say), and `rank --features
//! part_1.npy part_2.npy ...` ranks the union of all N parts exactly as one unsharded run
//! would.
//!
//! A part is three files side by side:
//! - `part.npy`: one row per image, the model's raw feature blocks followed by the image's
//!   raw traits (nothing standardised or fused yet: that needs the whole folder);
//! - `part.paths.txt`: the image paths relative to the folder, one per row;
//! - `part.shard.json`: what the rows mean and where they come from (model, blocks, folder,
//!   shard, content hashes, the files the part skipped).
//!
//! Which shard an image belongs to depends on its relative path only (BLAKE3 of it, modulo
//! N), so every task agrees without talking to the others, and a file added later does not
//! move the rest. Mixing parts that do not belong together is an error, never a wrong
//! union.

use crate::pipeline::{FeatureSet, Item};
use crate::scan::{Shard, Skip, SkipReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `.shard.json` sidecar.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    format: String,
    shard: Shard,
    /// The folder, canonical: parts of different folders never unite.
    root: PathBuf,
    /// Everything that changes the features (the cache key's model part).
    model_id: String,
    model: String,
    blocks: Vec<(String, usize)>,
    traits: usize,
    hashes: Vec<String>,
    skipped: Vec<(String, String)>,
}

const FORMAT: &str = "snowscope-shard-1";

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Npy(#[from] crate::npy::NpyError),
    #[error(
        "cannot read {path}: {cause} (a part is written by `features DIR --shard I/N --out FILE.npy`, with its .paths.txt and .shard.json beside it)"
    )]
    Sidecar { path: PathBuf, cause: String },
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{part}: {why}")]
    Mismatch { part: PathBuf, why: String },
    #[error("no part given")]
    Empty,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The `.paths.txt` and `.shard.json` files beside `npy`.
fn sidecars(npy: &Path) -> (PathBuf, PathBuf) {
    (
        npy.with_extension("paths.txt"),
        npy.with_extension("shard.json"),
    )
}

/// Writes `set` (the features of one shard of `root`) as a part at `npy`.
pub fn write(set: &FeatureSet, shard: Shard, npy: &Path) -> Result<(), ShardError> {
    let traits = crate::traits::COUNT;
    let cols = set.dim + traits;
    let features = set.features()?;
    let mut rows = Vec::with_capacity(set.items.len() * cols);
    for i in 0..set.items.len() {
        rows.extend_from_slice(&features.row(i));
        match set.traits_of(i) {
            Some(t) => rows.extend_from_slice(t),
            None => rows.extend(std::iter::repeat_n(0.0, traits)),
        }
    }
    crate::npy::write(npy, &rows, set.items.len(), cols)?;
    let (paths, json) = sidecars(npy);
    let list: String = set.items.iter().map(|i| i.rel.clone() + "\n").collect();
    let sidecar = Sidecar {
        format: FORMAT.into(),
        shard,
        root: set.root.clone(),
        model_id: set.model_id.clone(),
        model: set.model.clone(),
        blocks: set.blocks.clone(),
        traits,
        hashes: set.items.iter().map(|i| i.hash.clone()).collect(),
        skipped: set
            .skipped
            .iter()
            .map(|s| (s.path.clone(), s.reason.to_string()))
            .collect(),
    };
    let text = serde_json::to_string(&sidecar).expect("plain data serialises");
    for (path, bytes) in [(paths, list.into_bytes()), (json, text.into_bytes())] {
        crate::store::write_atomic(&path, &bytes)
            .map_err(|cause| ShardError::Write { path, cause })?;
    }
    Ok(())
}

/// One part as read back.
struct Part {
    npy: PathBuf,
    sidecar: Sidecar,
    rels: Vec<String>,
    data: Vec<f32>,
    cols: usize,
}

fn read_part(npy: &Path) -> Result<Part, ShardError> {
    let (paths, json) = sidecars(npy);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| ShardError::Sidecar {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })
    };
    let sidecar: Sidecar =
        serde_json::from_str(&read(&json)?).map_err(|e| ShardError::Sidecar {
            path: json.clone(),
            cause: e.to_string(),
        })?;
    let mismatch = |why: String| ShardError::Mismatch {
        part: npy.to_path_buf(),
        why,
    };
    if sidecar.format != FORMAT {
        return Err(mismatch(format!(
            "format {} is not {FORMAT}",
            sidecar.format
        )));
    }
    let rels: Vec<String> = read(&paths)?.lines().map(String::from).collect();
    let (data, rows, cols) = crate::npy::read(npy)?;
    let width: usize = sidecar.blocks.iter().map(|b| b.1).sum::<usize>() + sidecar.traits;
    if cols != width {
        return Err(mismatch(format!(
            "{cols} columns, but its blocks and traits make {width}"
        )));
    }
    if rels.len() != rows || sidecar.hashes.len() != rows {
        return Err(mismatch(format!(
            "{rows} rows, but {} paths and {} content hashes",
            rels.len(),
            sidecar.hashes.len()
        )));
    }
    if let Some(stray) = rels.iter().find(|r| !sidecar.shard.holds(r)) {
        return Err(mismatch(format!(
            "{stray} does not belong to shard {}",
            sidecar.shard
        )));
    }
    Ok(Part {
        npy: npy.to_path_buf(),
        sidecar,
        rels,
        data,
        cols,
    })
}

/// The union of all the parts of one folder, in the scan's order: the feature set an
/// unsharded run of the same folder would have made.
pub fn union(parts: &[PathBuf]) -> Result<FeatureSet, ShardError> {
    let parts = parts
        .iter()
        .map(|p| read_part(p))
        .collect::<Result<Vec<_>, _>>()?;
    let first = parts.first().ok_or(ShardError::Empty)?;
    let expected = first.sidecar.shard.count;
    let mut seen = BTreeMap::new();
    for part in &parts {
        let (a, b) = (&first.sidecar, &part.sidecar);
        let why = if b.model_id != a.model_id || b.blocks != a.blocks || b.traits != a.traits {
            Some(format!(
                "made with another model or layers ({}) than {} ({})",
                b.model,
                first.npy.display(),
                a.model
            ))
        } else if b.root != a.root {
            Some(format!(
                "made from folder {}, {} from {}",
                b.root.display(),
                first.npy.display(),
                a.root.display()
            ))
        } else if b.shard.count != expected {
            Some(format!("is shard {} of a split into {expected}", b.shard))
        } else {
            seen.insert(b.shard.index, &part.npy)
                .map(|other| format!("is shard {} again (as {})", b.shard, other.display()))
        };
        if let Some(why) = why {
            return Err(ShardError::Mismatch {
                part: part.npy.clone(),
                why,
            });
        }
    }
    if let Some(missing) = (1..=expected).find(|i| !seen.contains_key(i)) {
        return Err(ShardError::Mismatch {
            part: first.npy.clone(),
            why: format!("shard {missing}/{expected} is missing: the union would leave images out"),
        });
    }
    // Every image once, in the scan's order (sorted relative paths).
    let mut rows: Vec<(&str, &Part, usize)> = parts
        .iter()
        .flat_map(|p| {
            p.rels
                .iter()
                .enumerate()
                .map(move |(i, r)| (r.as_str(), p, i))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(pair) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ShardError::Mismatch {
            part: pair[1].1.npy.clone(),
            why: format!("{} is also in {}", pair[0].0, pair[0].1.npy.display()),
        });
    }
    let sidecar = &first.sidecar;
    let dim = first.cols - sidecar.traits;
    let mut data = Vec::with_capacity(rows.len() * dim);
    let mut traits = Vec::with_capacity(rows.len() * sidecar.traits);
    let mut items = Vec::with_capacity(rows.len());
    for (rel, part, i) in rows {
        let row = &part.data[i * part.cols..(i + 1) * part.cols];
        data.extend_from_slice(&row[..dim]);
        traits.extend_from_slice(&row[dim..]);
        items.push(Item {
            rel: rel.to_string(),
            path: sidecar.root.join(rel),
            hash: part.sidecar.hashes[i].clone(),
        });
    }
    let mut set = FeatureSet::in_memory(
        sidecar.root.clone(),
        items,
        dim,
        data,
        traits,
        sidecar.model.clone(),
        sidecar.model_id.clone(),
        sidecar.blocks.clone(),
    );
    let mut skipped: Vec<Skip> = parts
        .iter()
        .flat_map(|p| &p.sidecar.skipped)
        .map(|(path, reason)| Skip {
            path: path.clone(),
            reason: SkipReason::Other(reason.clone()),
        })
        .collect();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    skipped.dedup_by(|a, b| a.path == b.path);
    set.skipped = skipped;
    Ok(set)
}
