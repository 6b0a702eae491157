//! snowscope: find the most unique images in a folder.
//!
//! The pipeline runs in one direction (ARCHITECTURE.md in the repository is the map):
//! `scan` -> `preprocess` -> `model` -> `extract` -> `store` -> `neighbours` -> `rank` ->
//! views. `pipeline` wires the stages together for the commands and the TUI; no module
//! imports from a later stage, and the command-line parser stays in the binary (`cli.rs`).

#[cfg(target_arch = "x86_64")]
pub mod cpu;
pub mod demo;
pub mod eval;
pub mod exit;
pub mod explain;
pub mod export;
pub mod extract;
pub mod linalg;
pub mod model;
pub mod neighbours;
pub mod npy;
pub mod pipeline;
pub mod preprocess;
pub mod profile;
pub mod rank;
pub mod resize;
pub mod rng;
pub mod sanitize;
pub mod scan;
pub mod shard;
pub mod signals;
pub mod store;
pub mod synth;
pub mod traits;
pub mod tui;
