//! From a folder to a feature matrix: scan, hash, reuse the cache, extract the rest; then
//! from the matrix to a ranking. Both front ends (`rank` and the explorer) go through
//! [`rank_folder`]. Progress goes to one callback that the kdam bar and the TUI both consume.

mod explained;

use crate::extract::{self, ExtractOptions, Job};
use crate::model::{FeatureModel, ModelConfig, ModelError};
use crate::neighbours::{BlockError, ListCache, SearchOptions, SearchReport};
use crate::npy::NpyError;
use crate::profile;
use crate::rank::{RankConfig, Ranking, rank_searched};
use crate::scan::{self, Skip, SkipReason, content_hash};
use crate::store::{
    CachePrecision, FeatureStore, FileStamp, Marks, MarksError, StoreError, VerifiedRows,
};
use rayon::prelude::*;
use std::borrow::Cow;
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

impl CacheMode {
    /// The cache folder; `None` when caching is off.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            CacheMode::Off => None,
            CacheMode::Default => Some(crate::store::default_cache_dir()),
            CacheMode::Dir(dir) => Some(dir.clone()),
        }
    }

    /// The marks of the folder `root` (canonical): kept in this cache folder, or for this
    /// run only when caching is off; with the reason when the saved ones cannot be read.
    pub fn marks(&self, root: &Path) -> (Marks, Option<MarksError>) {
        match self.dir() {
            Some(dir) => Marks::open(&dir, root),
            None => (Marks::in_memory(), None),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub model: ModelConfig,
    pub batch_size: usize,
    pub threads: usize,
    pub cache: CacheMode,
    /// How the feature cache holds the features (`--cache-precision`).
    pub cache_precision: CachePrecision,
}

/// Progress of one run, sent as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should read (e.g. a corrupt cache being rebuilt).
    Notice(String),
    /// The scan and hashing are done: `files` image files hold `total` distinct contents,
    /// of which `cached` need no model run.
    Planned {
        files: usize,
        total: usize,
        cached: usize,
        model: String,
    },
    Progress(Progress),
    Skipped(Skip),
    /// The features are ready and the ranking of this many images begins.
    Ranking(usize),
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

/// The features of a folder: row `i` of the matrix belongs to `items[i]`.
#[derive(Debug)]
pub struct FeatureSet {
    pub root: PathBuf,
    pub items: Vec<Item>,
    pub dim: usize,
    /// The CNN features (n x `dim`); see [`FeatureSet::features`].
    pub(crate) rows: Rows,
    pub skipped: Vec<Skip>,
    /// Set when the run was cancelled: `items` holds what was finished.
    pub cancelled: bool,
    pub model: String,
    /// Everything that changes the features (`FeatureModel::id`), to tell sets apart.
    pub model_id: String,
    /// Where the neighbour lists of this folder are cached (beside the features).
    pub neighbour_cache: Option<PathBuf>,
    /// The named column blocks of each row, in order: (layer, width); they sum to `dim`.
    pub blocks: Vec<(String, usize)>,
    /// The morphology of each image (n x `traits::COUNT`), empty for features made elsewhere.
    pub traits: Vec<f32>,
}

/// Where the feature rows of a set are.
#[derive(Debug)]
pub(crate) enum Rows {
    /// In memory, the set's row `i` at `i`.
    Loaded(Vec<f32>),
    /// In the memory-mapped feature cache, the set's row `i` at the store's row `of[i]`:
    /// read (and checked against the file's checksum) only when a ranking needs them, so a
    /// warm start whose neighbour lists are cached never reads them.
    Cached {
        store: Box<FeatureStore>,
        of: Vec<u32>,
    },
}

/// The feature rows of a set, ready to read (see [`FeatureSet::features`]).
#[derive(Debug, Clone, Copy)]
pub enum FeatureRows<'a> {
    Loaded(&'a [f32], usize),
    Cached(VerifiedRows<'a>, &'a [u32]),
}

impl<'a> FeatureRows<'a> {
    /// The features of the set's image `i` (converted where the cache holds f16).
    pub fn row(&self, i: usize) -> Cow<'a, [f32]> {
        match *self {
            FeatureRows::Loaded(data, dim) => Cow::Borrowed(&data[i * dim..(i + 1) * dim]),
            FeatureRows::Cached(store, of) => store.features(of[i] as usize),
        }
    }

    /// Every row, in the set's order.
    pub fn iter(self, n: usize) -> impl ExactSizeIterator<Item = Cow<'a, [f32]>> {
        (0..n).map(move |i| self.row(i))
    }
}

impl FeatureSet {
    /// A set whose features are `data` (n x `dim`, one row per item) in memory.
    #[allow(clippy::too_many_arguments)]
    pub fn in_memory(
        root: PathBuf,
        items: Vec<Item>,
        dim: usize,
        data: Vec<f32>,
        traits: Vec<f32>,
        model: String,
        model_id: String,
        blocks: Vec<(String, usize)>,
    ) -> Self {
        FeatureSet {
            root,
            items,
            dim,
            rows: Rows::Loaded(data),
            skipped: Vec::new(),
            cancelled: false,
            model,
            model_id,
            neighbour_cache: None,
            blocks,
            traits,
        }
    }

    /// The feature rows. Rows in the feature cache are checked against its checksum on
    /// the first call; an error means the file was damaged since it was written, and the
    /// file is then removed, so that the next run extracts the images again (what
    /// [`rank_folder`] does at once).
    pub fn features(&self) -> Result<FeatureRows<'_>, StoreError> {
        match &self.rows {
            Rows::Loaded(data) => Ok(FeatureRows::Loaded(data, self.dim)),
            Rows::Cached { store, of } => match store.verified() {
                Ok(rows) => Ok(FeatureRows::Cached(rows, of)),
                Err(e) => {
                    store.discard();
                    Err(e)
                }
            },
        }
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

    /// A feature set from a .npy matrix (embeddings made elsewhere) and a text file with
    /// one path per row. Without file contents, rows are distinct unless their features
    /// are identical.
    pub fn from_npy(npy: &Path, list: &Path) -> Result<Self, PipelineError> {
        let (data, rows, dim) = crate::npy::read(npy)?;
        let text = std::fs::read_to_string(list).map_err(|cause| PipelineError::PathList {
            path: list.to_path_buf(),
            cause,
        })?;
        let paths: Vec<&str> = text.lines().collect();
        if paths.len() != rows {
            return Err(PipelineError::RowCount {
                npy: npy.to_path_buf(),
                rows,
                list: list.to_path_buf(),
                paths: paths.len(),
            });
        }
        let items = paths
            .iter()
            .enumerate()
            .map(|(i, p)| Item {
                rel: p.to_string(),
                path: PathBuf::from(p),
                hash: format!("row{i}"),
            })
            .collect();
        let model = format!("precomputed {}", npy.display());
        Ok(FeatureSet::in_memory(
            list.parent().unwrap_or(Path::new(".")).to_path_buf(),
            items,
            dim,
            data,
            Vec::new(),
            model.clone(),
            model,
            Vec::new(),
        ))
    }

    /// The profile `cfg` resolves to for this set, and the matrix (n x dim) the nearest
    /// neighbours are searched in: what `rank` ranks and `features --out` writes.
    pub fn embedding(
        &self,
        cfg: &RankConfig,
    ) -> Result<(profile::Choice, Vec<f32>, usize), StoreError> {
        let choice = profile::choose(cfg.profile, &self.traits);
        let fusion = choice.profile.fusion();
        let block = fusion.layer.map(|layer| self.block(layer));
        let rows = self.features()?.iter(self.items.len());
        let (data, dim) =
            profile::embedding_of_rows(&fusion, block, rows, &self.traits, cfg.normalise);
        Ok((choice, data, dim))
    }

    /// The ranking from the neighbour lists cached for this set, if there are any: never
    /// a search.
    pub fn rank_cached(&self, cfg: &RankConfig) -> Option<Ranking> {
        self.rank_from_cache(cfg, &cfg.search()).map(|r| r.0)
    }

    /// What the set's images are, in 128 bits: equal for two sets of the same files, in
    /// the same order, with the same contents. (A fast hash, not a cryptographic one: it
    /// tells the explorer whether the folder changed, which needs no defence against
    /// crafted file names, and it is made on the way to the first screen.)
    pub fn images_digest(&self) -> u128 {
        use std::hash::{BuildHasher, Hasher};
        let [mut low, mut high] =
            [1u64, 2].map(|seed| foldhash::quality::FixedState::with_seed(seed).build_hasher());
        for hasher in [&mut low, &mut high] {
            hasher.write(self.root.as_os_str().as_encoded_bytes());
            for item in &self.items {
                // Lengths first, so that no two lists of names run together alike.
                hasher.write_usize(item.rel.len());
                hasher.write(item.rel.as_bytes());
                hasher.write(item.hash.as_bytes());
            }
        }
        u128::from(high.finish()) << 64 | u128::from(low.finish())
    }

    /// Ranks the images of the set, reusing its cached neighbour lists when unchanged. The
    /// folder's profile decides which features (and whether its traits) take part.
    pub fn rank(&self, cfg: &RankConfig) -> Result<Ranking, PipelineError> {
        let search = cfg.search();
        if let Some(cached) = self.rank_from_cache(cfg, &search) {
            return Ok(cached.0);
        }
        let (choice, data, dim) = self.embedding(cfg)?;
        Ok(self.rank_embedding(cfg, &search, choice, &data, dim)?.0)
    }

    /// `rank`, with the neighbour search's options and how the search went, for a set that
    /// is ranked once and then only shown: features in memory are consumed, so that the
    /// search runs beside one copy of the matrix, not two (at a million 1280-d rows each
    /// copy is 5 GB). Where the profile searches the rows as they are, they are normalised
    /// in place. Fails where `search` names row blocks that do not make up this search, or
    /// where the feature cache turns out damaged.
    pub fn rank_once(
        &mut self,
        cfg: &RankConfig,
        search: &SearchOptions,
    ) -> Result<(Ranking, SearchReport), PipelineError> {
        if let Some(cached) = self.rank_from_cache(cfg, search) {
            return Ok(cached);
        }
        let (choice, data, dim) = self.take_embedding(cfg)?;
        Ok(self.rank_embedding(cfg, search, choice, &data, dim)?)
    }

    /// Block `part` of the exact neighbour search `rank_once` would run, written to `out`
    /// (`rank --rows I/N`; `rank --neighbours` merges the blocks); (tile pairs compared, of
    /// how many). Consumes the features as `rank_once` does.
    pub fn search_block(
        &mut self,
        cfg: &RankConfig,
        part: crate::scan::Shard,
        out: &Path,
    ) -> Result<(usize, usize), PipelineError> {
        let (_, data, dim) = self.take_embedding(cfg)?;
        let hashes: Vec<&str> = self.items.iter().map(|i| i.hash.as_str()).collect();
        Ok(crate::rank::search_rows_block(
            &hashes,
            &data,
            dim,
            &Self::fused(cfg),
            part,
            out,
        )?)
    }

    /// The embedding the profile ranks on; features in memory are taken out of the set.
    fn take_embedding(
        &mut self,
        cfg: &RankConfig,
    ) -> Result<(profile::Choice, Vec<f32>, usize), StoreError> {
        let choice = profile::choose(cfg.profile, &self.traits);
        let fusion = choice.profile.fusion();
        let block = fusion.layer.map(|layer| self.block(layer));
        let raw = match &mut self.rows {
            Rows::Loaded(data) => std::mem::take(data),
            Rows::Cached { .. } => return self.embedding(cfg),
        };
        let (data, dim) =
            profile::embedding_of(&fusion, block, raw, self.dim, &self.traits, cfg.normalise);
        Ok((choice, data, dim))
    }

    /// The ranking settings the embedding is searched with: `embedding` normalised the CNN
    /// part only, so that the traits keep their weight.
    fn fused(cfg: &RankConfig) -> RankConfig {
        RankConfig {
            normalise: false,
            ..*cfg
        }
    }

    /// Where the neighbour lists are remembered, and for rows from the feature cache
    /// unchanged since it was written, a key that stands for the embedding of `choice`
    /// without reading the rows: the file's checksums, which of its rows in which order,
    /// and the settings the embedding is made with.
    fn list_cache(&self, cfg: &RankConfig, choice: &profile::Choice) -> Option<ListCache<'_>> {
        let path = self.neighbour_cache.as_deref()?;
        let rows = match &self.rows {
            Rows::Cached { store, of } => store.fingerprint().map(|fingerprint| {
                let mut hasher = blake3::Hasher::new();
                hasher.update(EMBEDDING_VERSION.as_bytes());
                hasher.update(fingerprint.as_bytes());
                hasher.update(format!("{:?} {}", choice.profile, cfg.normalise).as_bytes());
                of.iter().for_each(|r| {
                    hasher.update(&r.to_le_bytes());
                });
                *hasher.finalize().as_bytes()
            }),
            Rows::Loaded(_) => None,
        };
        Some(ListCache { path, rows })
    }

    /// The ranking from the neighbour lists cached for these rows, without reading them.
    fn rank_from_cache(
        &self,
        cfg: &RankConfig,
        search: &SearchOptions,
    ) -> Option<(Ranking, SearchReport)> {
        let started = Instant::now();
        let choice = profile::choose(cfg.profile, &self.traits);
        let cache = self.list_cache(cfg, &choice)?;
        cache.rows?;
        tracing::info!(secs = ?started.elapsed(), "profile chosen");
        let fusion = choice.profile.fusion();
        let block = fusion.layer.map(|layer| self.block(layer));
        let dim = profile::embedding_width(&fusion, block, self.items.len(), &self.traits);
        let paths: Vec<&str> = self.items.iter().map(|i| i.rel.as_str()).collect();
        let (ranking, report) =
            crate::rank::rank_from_cache(&paths, dim, &Self::fused(cfg), cache, search)?;
        tracing::info!(secs = ?started.elapsed(), "ranked from the cached lists");
        let ranking = self.with_profile(ranking, cfg, choice);
        tracing::info!(secs = ?started.elapsed(), "ranking ready");
        Some((ranking, report))
    }

    fn rank_embedding(
        &self,
        cfg: &RankConfig,
        search: &SearchOptions,
        choice: profile::Choice,
        data: &[f32],
        dim: usize,
    ) -> Result<(Ranking, SearchReport), BlockError> {
        if self.items.is_empty() {
            let ranking = Ranking {
                config: *cfg,
                profile: choice,
                images: Vec::new(),
                stats: None,
            };
            let why = "no images".to_string();
            return Ok((ranking, SearchReport::Exact { why }));
        }
        let paths: Vec<&str> = self.items.iter().map(|i| i.rel.as_str()).collect();
        let hashes: Vec<&str> = self.items.iter().map(|i| i.hash.as_str()).collect();
        let cache = self.list_cache(cfg, &choice);
        let (ranking, report) =
            rank_searched(&paths, &hashes, data, dim, &Self::fused(cfg), cache, search)?;
        Ok((self.with_profile(ranking, cfg, choice), report))
    }

    /// A ranking of the fused embedding, told the settings and profile it was asked with,
    /// and each image's traits.
    fn with_profile(
        &self,
        mut ranking: Ranking,
        cfg: &RankConfig,
        choice: profile::Choice,
    ) -> Ranking {
        ranking.config = *cfg;
        ranking.profile = choice;
        ranking.images.par_iter_mut().for_each(|image| {
            image.traits = self
                .traits_of(image.index)
                .map_or_else(Vec::new, <[f32]>::to_vec);
        });
        ranking
    }
}

/// Changed whenever `profile::embedding` may give other vectors for the same rows and
/// settings: neighbour lists cached under the feature cache's checksums are then searched
/// again.
const EMBEDDING_VERSION: &str = "embedding 1";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Extract(#[from] extract::ExtractError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("cannot read {path}: {cause}")]
    PathList {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Blocks(#[from] BlockError),
    #[error("{npy} has {rows} rows but {list} lists {paths} paths")]
    RowCount {
        npy: PathBuf,
        rows: usize,
        list: PathBuf,
        paths: usize,
    },
}

/// Finished work is written to the cache at least this often during a long extraction...
const SAVE_EVERY: Duration = Duration::from_secs(3);
/// ...but never more than this fraction of the time goes to saving (a save rewrites the
/// whole file, which grows with the folder).
const SAVE_SHARE: u32 = 10;

/// The features of `root` (from the cache where possible), then their ranking: what the
/// explorer shows. The ranking is `None` when the run was cancelled (the set then holds
/// what was finished), or when the set's `images_digest` is `shown`: the caller already
/// has that ranking.
pub fn rank_folder(
    root: &Path,
    cfg: &PipelineConfig,
    rank_cfg: &RankConfig,
    shown: Option<u128>,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<(FeatureSet, Option<Ranking>), PipelineError> {
    let mut rebuilt = false;
    loop {
        let set = compute_features(root, cfg, cancel, on_event)?;
        if set.cancelled || shown.is_some_and(|d| d == set.images_digest()) {
            return Ok((set, None));
        }
        on_event(Event::Ranking(set.items.len()));
        match set.rank(rank_cfg) {
            // `FeatureSet::features` removed the damaged file: this time every image is
            // extracted again.
            Err(e) if e.is_damaged_cache() && !rebuilt => {
                on_event(Event::Notice(e.to_string()));
                rebuilt = true;
            }
            ranking => return Ok((set, Some(ranking?))),
        }
    }
}

impl PipelineError {
    /// The feature cache turned out damaged when its features were first read (and is
    /// removed): computing the features again rebuilds it.
    pub fn is_damaged_cache(&self) -> bool {
        matches!(self, PipelineError::Store(StoreError::Corrupt { .. }))
    }
}

pub fn compute_features(
    root: &Path,
    cfg: &PipelineConfig,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<FeatureSet, PipelineError> {
    compute_features_of_shard(root, cfg, None, cancel, on_event)
}

/// `compute_features` for the files of one `shard` of the folder (all when `None`); the
/// skips are split the same way. Each shard has its own cache file, so shards run side by
/// side on one machine do not overwrite each other's.
pub fn compute_features_of_shard(
    root: &Path,
    cfg: &PipelineConfig,
    shard: Option<scan::Shard>,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<FeatureSet, PipelineError> {
    let root = root.canonicalize().map_err(|cause| scan::ScanError::Root {
        path: root.to_path_buf(),
        cause,
    })?;
    let started = Instant::now();
    // The model is loaded and its cache opened while the folder is listed: the listing
    // waits on the kernel, and at a million files the cache takes a quarter of a second.
    let (found, opened) = std::thread::scope(|s| {
        let opening = s.spawn(|| {
            let model = FeatureModel::load(&cfg.model)?;
            let (store, problem) = open_store(&root, &model, shard, cfg);
            tracing::info!(rows = store.len(), secs = ?started.elapsed(), "feature cache opened");
            Ok::<_, PipelineError>((model, store, problem))
        });
        let found = scan::scan(&root);
        let files = found.as_ref().map_or(0, |f| f.files.len());
        tracing::info!(files, secs = ?started.elapsed(), "folder listed");
        let opened = opening
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (found, opened)
    });
    let mut found = found?;
    let (model, mut store, problem) = opened?;
    if let Some(problem) = problem {
        on_event(Event::Notice(problem.to_string()));
    }
    if let Some(shard) = shard {
        found.files.retain(|f| shard.holds(&f.rel));
        found.skipped.retain(|s| shard.holds(&s.path));
    }
    // Each stored row is the model's features followed by the image's traits.
    let dim: usize = model.blocks.iter().map(|b| b.1).sum();
    let mut skipped = found.skipped;
    for skip in &skipped {
        on_event(Event::Skipped(skip.clone()));
    }

    // Content hashes (and rows): reused from the cache when size and mtime are unchanged.
    let known = store.recognise(&found.files);
    let unchanged = store.lists_exactly(&known);
    let hashed: Vec<Result<(String, Option<usize>), SkipReason>> = found
        .files
        .par_iter()
        .zip(known)
        .map(|(f, known)| match known {
            Some(known) => Ok((known.hash, known.row)),
            None => content_hash(&f.path)
                .map(|hash| (hash, None))
                .map_err(SkipReason::unreadable),
        })
        .collect();
    let mut stamps = Vec::with_capacity(found.files.len());
    let mut files = Vec::with_capacity(found.files.len());
    // The row of each of `files` where the cache knows it.
    let mut rows = Vec::with_capacity(found.files.len());
    for (file, hash) in found.files.into_iter().zip(hashed) {
        match hash {
            Ok((hash, row)) => {
                stamps.push((file.size, file.mtime_ns));
                rows.push(row);
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
    if !unchanged {
        store.set_files(
            files
                .iter()
                .zip(&stamps)
                .map(|(item, &(size, mtime_ns))| FileStamp {
                    rel: &item.rel,
                    size,
                    mtime_ns,
                    hash: &item.hash,
                }),
        );
    }
    // Files hashed anew may hold a content the cache has under another name.
    for (row, item) in rows.iter_mut().zip(&files) {
        if row.is_none() {
            *row = store.row_of(&item.hash);
        }
    }
    tracing::info!(secs = ?started.elapsed(), "files matched to the cache");

    // One model run per distinct content not in the cache.
    let mut seen = foldhash::HashSet::default();
    let jobs: Vec<Job> = files
        .iter()
        .zip(&rows)
        .enumerate()
        .filter(|(_, (f, row))| row.is_none() && seen.insert(f.hash.as_str()))
        .map(|(id, (f, _))| Job {
            id,
            path: f.path.clone(),
        })
        .collect();
    let mut cached_rows = vec![false; store.len()];
    rows.iter().flatten().for_each(|&r| cached_rows[r] = true);
    let cached = cached_rows.iter().filter(|&&c| c).count();
    let distinct = cached + jobs.len();
    on_event(Event::Planned {
        files: files.len(),
        total: distinct,
        cached,
        model: model.description.clone(),
    });

    let extracting = Instant::now();
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
                if let Err(e) = store.insert(&files[*id].hash, &row[..dim], &row[dim..]) {
                    store_error.get_or_insert(e);
                }
            }
            let skipped_now = batch.skipped.len();
            for (id, reason) in batch.skipped {
                let skip = Skip {
                    path: files[id].rel.clone(),
                    reason: reason.into(),
                };
                failed_hashes.insert(files[id].hash.clone(), skip.clone());
                on_event(Event::Skipped(skip));
            }
            progress.done += batch.rows.len() + skipped_now;
            progress.skipped += skipped_now;
            let extracted = progress.done - (distinct - jobs.len());
            let secs = extracting.elapsed().as_secs_f64().max(1e-9);
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

    // A file that failed to decode takes its byte-identical copies with it (files with a
    // cached row did not fail).
    if !failed_hashes.is_empty() {
        for (item, _) in files.iter().zip(&rows).filter(|(_, row)| row.is_none()) {
            if let Some(failure) = failed_hashes.get(&item.hash) {
                let reason = if failure.path == item.rel {
                    failure.reason.clone()
                } else {
                    SkipReason::CopyOf {
                        original: failure.path.clone(),
                        reason: Box::new(failure.reason.clone()),
                    }
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
    }
    let cancelled = cancel.load(std::sync::atomic::Ordering::Relaxed);
    let mut items = Vec::with_capacity(files.len());
    let mut of = Vec::with_capacity(files.len());
    let mut traits = Vec::with_capacity(files.len() * crate::traits::COUNT);
    for (item, row) in files.into_iter().zip(rows) {
        // A save during the extraction may have renumbered the rows found before it.
        if let Some(row) = store.row_of_near(&item.hash, row) {
            of.push(row as u32);
            traits.extend_from_slice(store.traits(row));
            items.push(item);
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::info!(images = items.len(), secs = ?started.elapsed(), "features ready");
    Ok(FeatureSet {
        skipped,
        cancelled,
        ..FeatureSet::in_cache(root, model, store, items, of, traits)
    })
}

impl FeatureSet {
    /// The set of `items` whose features are the feature cache's rows `of` (the model's
    /// `store`), with their `traits`; nothing skipped.
    fn in_cache(
        root: PathBuf,
        model: FeatureModel,
        store: FeatureStore,
        items: Vec<Item>,
        of: Vec<u32>,
        traits: Vec<f32>,
    ) -> Self {
        // Each stored row is the model's features followed by the image's traits.
        let dim = model.blocks.iter().map(|b| b.1).sum();
        FeatureSet {
            root,
            items,
            dim,
            skipped: Vec::new(),
            cancelled: false,
            model: model.description,
            model_id: model.id,
            neighbour_cache: store.path().map(crate::store::knn::file_beside),
            blocks: model.blocks,
            traits,
            rows: Rows::Cached {
                store: Box::new(store),
                of,
            },
        }
    }
}

/// The folder's features as its cache last saw it, without listing the folder: each file
/// the cache's list holds whose content has a row, in the order a scan would give them.
/// `None` where there is no such list (no cache, a damaged one, another model). What
/// the folder holds now may differ: the explorer shows this set's cached ranking at once
/// and then checks it against `compute_features` (`FeatureSet::images_digest`).
pub fn remembered(root: &Path, cfg: &PipelineConfig) -> Option<FeatureSet> {
    let started = Instant::now();
    let root = root.canonicalize().ok()?;
    let model = FeatureModel::load(&cfg.model).ok()?;
    let (store, problem) = open_store(&root, &model, None, cfg);
    if problem.is_some() || store.path().is_none() {
        return None;
    }
    let mut items = Vec::new();
    let mut of = Vec::new();
    let mut traits = Vec::new();
    // Files whose content has no row failed to decode last time: the check finds them.
    for (rel, known) in store.listed() {
        if let Some(row) = known.row {
            items.push(Item {
                rel: rel.to_string(),
                path: root.join(rel),
                hash: known.hash,
            });
            of.push(row as u32);
            traits.extend_from_slice(store.traits(row));
        }
    }
    tracing::info!(images = items.len(), secs = ?started.elapsed(), "remembered set read");
    if items.is_empty() {
        return None;
    }
    Some(FeatureSet::in_cache(root, model, store, items, of, traits))
}

/// What tells the feature caches of one folder apart: the model (everything that changes
/// its features), the traits' version (the rows hold them too), the shard and how the
/// features are stored (f16 rows are rounded: they are other features).
pub fn cache_key(
    model: &FeatureModel,
    shard: Option<scan::Shard>,
    precision: CachePrecision,
) -> String {
    let mut key = format!("{}-traits{}", model.id, crate::traits::VERSION);
    if let Some(shard) = shard {
        key += &format!("-shard{}of{}", shard.index, shard.count);
    }
    if precision == CachePrecision::F16 {
        key += "-cachef16";
    }
    key
}

/// The feature cache of `root` for `model`, and what was wrong with the one on disk.
fn open_store(
    root: &Path,
    model: &FeatureModel,
    shard: Option<scan::Shard>,
    cfg: &PipelineConfig,
) -> (FeatureStore, Option<StoreError>) {
    // Without a cache file there is nothing to halve: the rows stay as the model gave them.
    let precision = match cfg.cache {
        CacheMode::Off => CachePrecision::F32,
        _ => cfg.cache_precision,
    };
    let key = cache_key(model, shard, precision);
    match cfg.cache.dir() {
        Some(dir) => FeatureStore::open_as(&dir, root, &key, precision),
        None => (FeatureStore::in_memory(root, &key), None),
    }
}
