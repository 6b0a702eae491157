//! The encoded previews the explorer holds, beside the worker that makes them
//! (`preview.rs`): a small cache, oldest dropped first.

use super::graphics::Picture;
use super::preview::{Failure, PreviewError, PreviewKey, PreviewResult};
use std::collections::{HashMap, VecDeque};

/// A cache of encoded previews, oldest dropped first.
#[derive(Default)]
pub struct Previews {
    pub entries: HashMap<PreviewKey, PreviewSlot>,
    order: VecDeque<PreviewKey>,
}

pub enum PreviewSlot {
    Pending,
    Ready(Box<Picture>),
    Failed(PreviewError),
}

/// Encoded previews kept; enough for a few pages of back-and-forth at two sizes.
const PREVIEW_CACHE: usize = 48;

impl Previews {
    pub(super) fn insert(&mut self, key: PreviewKey, slot: PreviewSlot) {
        if self.entries.insert(key, slot).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PREVIEW_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    pub(super) fn remove(&mut self, key: &PreviewKey) {
        self.entries.remove(key);
        self.order.retain(|k| k != key);
    }

    pub fn get(&self, key: &PreviewKey) -> Option<&PreviewSlot> {
        self.entries.get(key)
    }

    /// Files the worker's answer: the picture, its failure, or (stale) nothing to ask again.
    pub(super) fn accept(&mut self, result: PreviewResult) {
        match result.outcome {
            Ok(protocol) => self.insert(result.key, PreviewSlot::Ready(protocol)),
            Err(Failure::Stale) => self.remove(&result.key),
            Err(Failure::Error(e)) => self.insert(result.key, PreviewSlot::Failed(e)),
        }
    }
}
