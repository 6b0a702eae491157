//! What snowscope keeps on disk between runs, side by side in the cache folder: the
//! feature cache (`features.rs`, one safetensors file per folder and model configuration)
//! and the neighbour-list cache beside it (`knn.rs`, a `.knn` file), and the user's marks
//! (`marks.rs`, one `.marks.json` per folder), and the explanation regions found
//! (`regions.rs`, a `.regions.json` beside the features). All of them, and the `.npy` export, write
//! through `fs::write_atomic`.

mod features;
mod file_table;
mod fs;
pub mod knn;
mod marks;
pub mod regions;

pub use features::{
    CachePrecision, Corruption, FeatureStore, FileStamp, Recognised, StoreError, VerifiedRows,
};
pub use fs::{write_atomic, write_atomic_with};
pub use marks::{Marks, MarksError};

use std::path::PathBuf;

/// The default cache folder: `$XDG_CACHE_HOME/snowscope` (or the platform's equivalent).
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("snowscope")
}
