//! snowscope: find the most unique images in a folder.
//!
//! The pipeline runs in one direction (see DESIGN.md):
//! `scan` -> `preprocess` -> `model` -> `store` -> `neighbours` -> `rank` -> views.
//! `pipeline` wires the first stages together for the commands and the TUI.

pub mod eval;
pub mod exit;
pub mod export;
pub mod extract;
pub mod linalg;
pub mod model;
pub mod neighbours;
pub mod npy;
pub mod pipeline;
pub mod preprocess;
pub mod rank;
pub mod rng;
pub mod sanitize;
pub mod scan;
pub mod store;
pub mod synth;
pub mod tui;
