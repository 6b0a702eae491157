//! Image previews off the UI thread: decode (EXIF orientation applied), shrink, and encode
//! for the terminal's graphics protocol. The worker always serves the newest batch of
//! requests and reports older ones as stale, so holding `j` never queues up work; decoded
//! images are kept in a small cache so going back and forth does not decode again.

use super::graphics::{Graphics, Picture};
use crate::preprocess::load_rgb;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use image::DynamicImage;
use image::imageops::FilterType;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One encoded preview: an image (feature-set row) at a size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreviewKey {
    pub index: usize,
    pub width: u16,
    pub height: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRequest {
    pub key: PreviewKey,
    pub path: PathBuf,
    /// Requests of one generation are sent together; a newer generation replaces them.
    pub generation: u64,
}

#[derive(Debug)]
pub enum Failure {
    /// Replaced by newer requests before it was done; ask again if still needed.
    Stale,
    Error(PreviewError),
}

/// Why an image has no preview; shown in its slot.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Decode(#[from] crate::preprocess::DecodeError),
    #[error("cannot encode preview: {0}")]
    Encode(String),
    /// A decoder or encoder panicked.
    #[error("internal error: {0}")]
    Panic(String),
}

pub struct PreviewResult {
    pub key: PreviewKey,
    pub outcome: Result<Box<Picture>, Failure>,
}

/// Decoded images are shrunk to at most this many pixels a side before caching: more than
/// any preview pane needs, and it keeps the per-frame resize cheap.
const MAX_SIDE: u32 = 1024;
/// Decoded images kept.
const DECODED_CACHE: usize = 16;

/// Decodes `path` for previewing.
pub fn decode(path: &Path) -> Result<Arc<DynamicImage>, PreviewError> {
    let rgb = load_rgb(path)?;
    let img = DynamicImage::ImageRgb8(rgb);
    let img = if img.width() > MAX_SIDE || img.height() > MAX_SIDE {
        img.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle)
    } else {
        img
    };
    Ok(Arc::new(img))
}

/// Decodes and encodes one request (what the worker does, callable directly in tests).
pub fn render_request(graphics: &Graphics, req: &PreviewRequest) -> PreviewResult {
    let outcome = decode(&req.path)
        .and_then(|img| graphics.encode(&img, req.key.width, req.key.height))
        .map(Box::new)
        .map_err(Failure::Error);
    PreviewResult {
        key: req.key,
        outcome,
    }
}

/// Runs the preview worker until the request channel closes.
pub fn spawn(
    graphics: Graphics,
    requests: Receiver<Vec<PreviewRequest>>,
    results: Sender<PreviewResult>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("preview".into())
        .spawn(move || worker(graphics, requests, results))
        .expect("spawn preview thread")
}

fn worker(
    graphics: Graphics,
    requests: Receiver<Vec<PreviewRequest>>,
    results: Sender<PreviewResult>,
) {
    let mut decoded: VecDeque<(PathBuf, Arc<DynamicImage>)> = VecDeque::new();
    let stale = |batch: Vec<PreviewRequest>| {
        for r in batch {
            let _ = results.send(PreviewResult {
                key: r.key,
                outcome: Err(Failure::Stale),
            });
        }
    };
    let Ok(mut batch) = requests.recv() else {
        return;
    };
    loop {
        // Only the newest batch matters.
        loop {
            match requests.try_recv() {
                Ok(newer) => stale(std::mem::replace(&mut batch, newer)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let mut pending: VecDeque<PreviewRequest> = batch.into();
        let mut replaced = None;
        while let Some(req) = pending.pop_front() {
            let img = match decoded.iter().find(|(p, _)| *p == req.path) {
                Some((_, img)) => Ok(img.clone()),
                None => std::panic::catch_unwind(|| decode(&req.path))
                    .unwrap_or_else(|p| {
                        Err(PreviewError::Panic(super::runtime::panic_message(
                            p.as_ref(),
                        )))
                    })
                    .inspect(|img| {
                        decoded.push_back((req.path.clone(), img.clone()));
                        if decoded.len() > DECODED_CACHE {
                            decoded.pop_front();
                        }
                    }),
            };
            // A decoder or encoder bug must not end previews for the whole session.
            let outcome = img
                .and_then(|img| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        graphics
                            .encode(&img, req.key.width, req.key.height)
                            .map(Box::new)
                    }))
                    .unwrap_or_else(|p| {
                        Err(PreviewError::Panic(super::runtime::panic_message(
                            p.as_ref(),
                        )))
                    })
                })
                .map_err(|e| {
                    tracing::debug!(path = %req.path.display(), error = %e, "preview failed");
                    Failure::Error(e)
                });
            if results
                .send(PreviewResult {
                    key: req.key,
                    outcome,
                })
                .is_err()
            {
                return;
            }
            if let Ok(newer) = requests.try_recv() {
                stale(pending.drain(..).collect());
                replaced = Some(newer);
                break;
            }
        }
        batch = match replaced {
            Some(b) => b,
            None => match requests.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
        };
    }
}
