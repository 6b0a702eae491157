//! The progress view's state while the worker scans, extracts and ranks.

use crate::pipeline::{Event, Progress};
use crate::scan::Skip;

/// What the feature worker is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Scanning,
    Extracting,
    Ranking(usize),
    Cancelling,
}

/// The progress view's state.
#[derive(Debug, Clone)]
pub struct ProgressState {
    pub dir: String,
    pub model: String,
    pub stage: Stage,
    pub total: usize,
    pub cached: usize,
    pub progress: Progress,
    pub skipped: Vec<Skip>,
    pub notices: Vec<String>,
    /// Seconds since start, for the spinner and elapsed time.
    pub elapsed_s: f64,
}

impl ProgressState {
    pub fn new(dir: String, model: String) -> Self {
        ProgressState {
            dir,
            model,
            stage: Stage::Scanning,
            total: 0,
            cached: 0,
            progress: Progress::default(),
            skipped: Vec::new(),
            notices: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Takes in one event of the pipeline.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Notice(text) => self.notices.push(text),
            Event::Planned {
                total,
                cached,
                model,
                ..
            } => {
                self.total = total;
                self.cached = cached;
                self.model = model;
                self.progress.done = cached;
                self.progress.total = total;
                if self.stage == Stage::Scanning {
                    self.stage = Stage::Extracting;
                }
            }
            Event::Progress(progress) => self.progress = progress,
            Event::Skipped(skip) => self.skipped.push(skip),
            Event::Ranking(n) => {
                if self.stage != Stage::Cancelling {
                    self.stage = Stage::Ranking(n);
                }
            }
        }
    }
}
