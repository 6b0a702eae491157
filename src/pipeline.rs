//! From a folder to a feature matrix: scan, hash, reuse the cache, extract the rest.
//! Progress goes to one callback that the kdam bar and the TUI both consume.

use crate::extract::{self, ExtractOptions, Job};
use crate::model::{FeatureModel, ModelConfig, ModelError};
use crate::scan::{self, Skip, content_hash};
use crate::store::{FeatureStore, FileStamp};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Where the feature cache lives.
#[derive(Debug, Clone)]
pub enum CacheMode {
    /// The user's cache folder (XDG).
    Default,
    Dir(PathBuf),
    Off,
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub model: ModelConfig,
    pub batch_size: usize,
    pub threads: usize,
    pub cache: CacheMode,
}

/// Progress of one run, sent as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should read (e.g. a corrupt cache being rebuilt).
    Notice(String),
    /// The scan and hashing are done: `cached` of `total` images need no model run.
    Planned {
        total: usize,
        cached: usize,
        model: String,
    },
    Progress(Progress),
    Skipped(Skip),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub images_per_s: f64,
    pub eta_s: f64,
    pub current: String,
    pub skipped: usize,
}

/// One image with features, in scan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub rel: String,
    pub path: PathBuf,
    pub hash: String,
}

/// The features of a folder: row `i` of `data` belongs to `items[i]`.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub root: PathBuf,
    pub items: Vec<Item>,
    pub dim: usize,
    pub data: Vec<f32>,
    pub skipped: Vec<Skip>,
    /// Set when the run was cancelled: `items` holds what was finished.
    pub cancelled: bool,
    pub model: String,
    /// Where the neighbour lists of this folder are cached (beside the features).
    pub neighbour_cache: Option<PathBuf>,
    /// The named column blocks of each row, in order: (layer, width); they sum to `dim`.
    pub blocks: Vec<(String, usize)>,
    /// The morphology of each image (n x `traits::COUNT`), empty for features made elsewhere.
    pub traits: Vec<f32>,
}

impl FeatureSet {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// (offset, width) of the block called `layer`; the whole row when there is no such
    /// block (a single layer asked for with `--layer`, or features made elsewhere).
    pub fn block(&self, layer: &str) -> (usize, usize) {
        let mut offset = 0;
        for (name, width) in &self.blocks {
            if name == layer {
                return (offset, *width);
            }
            offset += width;
        }
        (0, self.dim)
    }

    /// The traits of image `i`, if known.
    pub fn traits_of(&self, i: usize) -> Option<&[f32]> {
        self.traits
            .get(i * crate::traits::COUNT..(i + 1) * crate::traits::COUNT)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Finished work is written to the cache at least this often during a long extraction...
const SAVE_EVERY: Duration = Duration::from_secs(3);
/// ...but never more than this fraction of the time goes to saving (a save rewrites the
/// whole file, which grows with the folder).
const SAVE_SHARE: u32 = 10;

pub fn compute_features(
    root: &Path,
    cfg: &PipelineConfig,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<FeatureSet, PipelineError> {
    let root = root.canonicalize().map_err(|cause| scan::ScanError::Root {
        path: root.to_path_buf(),
        cause,
    })?;
    let found = scan::scan(&root)?;
    let model = FeatureModel::load(&cfg.model)?;
    let mut store = open_store(&root, &model, &cfg.cache, on_event);
    let mut skipped = found.skipped;
    for skip in &skipped {
        on_event(Event::Skipped(skip.clone()));
    }

    // Content hashes: reused from the cache when size and mtime are unchanged.
    let hashed: Vec<_> = found
        .files
        .par_iter()
        .map(|f| match store.known_hash(f) {
            Some(h) => Ok(h.to_string()),
            None => content_hash(&f.path).map_err(|e| format!("cannot read file: {e}")),
        })
        .collect();
    let mut stamps = Vec::new();
    let mut files = Vec::new();
    for (file, hash) in found.files.into_iter().zip(hashed) {
        match hash {
            Ok(hash) => {
                stamps.push(FileStamp {
                    rel: file.rel.clone(),
                    size: file.size,
                    mtime_ns: file.mtime_ns,
                    hash: hash.clone(),
                });
                files.push(Item {
                    rel: file.rel,
                    path: file.path,
                    hash,
                });
            }
            Err(reason) => {
                let skip = Skip {
                    path: file.rel,
                    reason,
                };
                on_event(Event::Skipped(skip.clone()));
                skipped.push(skip);
            }
        }
    }
    store.set_files(stamps);

    // One model run per distinct content not in the cache.
    let mut seen = std::collections::HashSet::new();
    let jobs: Vec<Job> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| store.get(&f.hash).is_none() && seen.insert(f.hash.clone()))
        .map(|(id, f)| Job {
            id,
            path: f.path.clone(),
        })
        .collect();
    let distinct = files
        .iter()
        .map(|f| &f.hash)
        .collect::<std::collections::HashSet<_>>()
        .len();
    on_event(Event::Planned {
        total: distinct,
        cached: distinct - jobs.len(),
        model: model.description.clone(),
    });

    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut save_cost = Duration::ZERO;
    let mut progress = Progress {
        done: distinct - jobs.len(),
        total: distinct,
        ..Default::default()
    };
    let mut failed_hashes = std::collections::HashMap::new();
    let mut store_error = None;
    extract::run(
        &model,
        &jobs,
        ExtractOptions {
            batch_size: cfg.batch_size,
            threads: cfg.threads,
        },
        cancel,
        &mut |batch| {
            for (id, row) in &batch.rows {
                if let Err(e) = store.insert(&files[*id].hash, row) {
                    store_error.get_or_insert(e);
                }
            }
            for (id, reason) in batch.skipped.iter() {
                let skip = Skip {
                    path: files[*id].rel.clone(),
                    reason: reason.to_string(),
                };
                failed_hashes.insert(files[*id].hash.clone(), skip.clone());
                on_event(Event::Skipped(skip));
            }
            progress.done += batch.rows.len() + batch.skipped.len();
            progress.skipped += batch.skipped.len();
            let extracted = progress.done - (distinct - jobs.len());
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            progress.images_per_s = extracted as f64 / secs;
            progress.eta_s =
                (progress.total - progress.done) as f64 / progress.images_per_s.max(1e-9);
            if let Some(last) = batch.last {
                progress.current = files[last].rel.clone();
            }
            on_event(Event::Progress(progress.clone()));
            if last_save.elapsed() > SAVE_EVERY.max(save_cost * SAVE_SHARE) {
                let saving = Instant::now();
                if let Err(e) = store.save() {
                    on_event(Event::Notice(e.to_string()));
                }
                save_cost = saving.elapsed();
                last_save = Instant::now();
            }
        },
    )?;
    if let Some(e) = store_error {
        return Err(e.into());
    }
    if let Err(e) = store.save() {
        on_event(Event::Notice(format!(
            "{e}; results are kept in memory for this run"
        )));
    }

    // A file that failed to decode takes its byte-identical copies with it.
    for item in &files {
        if let Some(failure) = failed_hashes.get(&item.hash) {
            let reason = if failure.path == item.rel {
                failure.reason.clone()
            } else {
                format!(
                    "identical to {}, which failed: {}",
                    failure.path, failure.reason
                )
            };
            let skip = Skip {
                path: item.rel.clone(),
                reason,
            };
            if skip.path != failure.path {
                on_event(Event::Skipped(skip.clone()));
            }
            skipped.push(skip);
        }
    }
    let cancelled = cancel.load(std::sync::atomic::Ordering::Relaxed);
    // Each stored row is the model's features followed by the image's traits.
    let dim: usize = model.blocks.iter().map(|b| b.1).sum();
    let mut items = Vec::new();
    let mut data = Vec::new();
    let mut traits = Vec::new();
    for item in files {
        if let Some(row) = store.get(&item.hash) {
            data.extend_from_slice(&row[..dim]);
            traits.extend_from_slice(&row[dim..]);
            items.push(item);
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(FeatureSet {
        root,
        items,
        dim,
        data,
        skipped,
        cancelled,
        model: model.description,
        neighbour_cache: store.path().map(|p| p.with_extension("knn")),
        blocks: model.blocks,
        traits,
    })
}

fn open_store(
    root: &Path,
    model: &FeatureModel,
    mode: &CacheMode,
    on_event: &mut dyn FnMut(Event),
) -> FeatureStore {
    // The rows hold the traits too: their version is part of the key.
    let key = format!("{}-traits{}", model.id, crate::traits::VERSION);
    let dir = match mode {
        CacheMode::Off => return FeatureStore::in_memory(root, &key),
        CacheMode::Default => crate::store::default_cache_dir(),
        CacheMode::Dir(dir) => dir.clone(),
    };
    let (store, problem) = FeatureStore::open(&dir, root, &key);
    if let Some(problem) = problem {
        on_event(Event::Notice(problem.to_string()));
    }
    store
}
