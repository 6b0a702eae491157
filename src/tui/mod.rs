//! The terminal explorer: a progress view while features are extracted, then a sortable,
//! filterable table of the ranking with a boxplot of the score and image previews.
//!
//! `app.rs` holds the state and the pure `update`; `runtime.rs` the threads and the event
//! loop; `terminal.rs` the terminal's setup and restoring; `view/` the drawing.

pub mod app;
pub mod explorer;
pub mod graphics;
pub mod keys;
pub mod kitty_direct;
pub mod layout;
pub mod model;
pub mod paths;
pub mod preview;
pub mod preview_cache;
pub mod probe;
pub mod progress;
pub mod prompt;
mod runtime;
mod terminal;
#[doc(hidden)]
pub mod testing;
pub mod view;

#[cfg(test)]
mod app_tests;

use crate::pipeline::PipelineConfig;
use crate::rank::RankConfig;
use std::path::PathBuf;

pub use runtime::{Msg, run};

/// How previews are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewMode {
    /// Ask the terminal which graphics protocol it speaks; halfblocks when it does not
    /// answer (and instead of sixel inside tmux).
    Auto,
    /// This protocol, whatever the terminal answers.
    Force(GraphicsProtocol),
    /// Coloured half-block characters: every colour terminal, over SSH too.
    Halfblocks,
    /// Captions only.
    None,
}

/// A terminal graphics protocol that `PreviewMode::Force` can insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphicsProtocol {
    Kitty,
    Sixel,
    Iterm2,
}

pub struct TuiOptions {
    pub dir: PathBuf,
    pub pipeline: PipelineConfig,
    pub rank: RankConfig,
    pub preview: PreviewMode,
    /// Where tracing logs go; none are written when `None` (never to the screen).
    pub log_file: Option<PathBuf>,
}
