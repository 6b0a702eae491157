//! Image previews off the UI thread: decode (EXIF orientation applied), shrink, and encode
//! for the terminal's graphics protocol. The worker always serves the newest batch of
//! requests and reports older ones as stale, so holding `j` never queues up work; decoded
//! images are kept in a small cache so going back and forth does not decode again.

use super::graphics::{Graphics, Picture};
use crate::explain::{self, CellMap, Explainer};
use crate::model::ModelConfig;
use crate::preprocess::load_rgb;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use image::imageops::FilterType;
use image::{DynamicImage, Rgb, RgbImage};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One encoded preview: an image (feature-set row) at a size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreviewKey {
    /// Which ranking `index` and `against` are rows of: a ranking that replaces the one on
    /// screen (the folder changed while it was checked) numbers its images anew, so a
    /// picture made for the old one is never shown for the new.
    pub ranking: u32,
    pub index: usize,
    pub width: u16,
    pub height: u16,
    /// With the heat overlay: the image it is compared with (feature-set row).
    pub against: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRequest {
    pub key: PreviewKey,
    pub path: PathBuf,
    /// With the heat overlay: the file of `key.against`.
    pub against: Option<PathBuf>,
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
    #[error("cannot compare the pictures: {0}")]
    Heat(String),
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
pub fn render_request(graphics: &Graphics, heat: &mut Heat, req: &PreviewRequest) -> PreviewResult {
    let outcome = decode(&req.path)
        .and_then(|img| heat.apply(img, req))
        .and_then(|img| graphics.encode(&img, req.key.width, req.key.height))
        .map(Box::new)
        .map_err(Failure::Error);
    PreviewResult {
        key: req.key,
        outcome,
    }
}

/// The heat overlay: the model's feature maps of the pictures compared (loaded on first
/// use: most sessions never ask), and the maps of the last few files.
pub struct Heat {
    model: ModelConfig,
    explainer: Option<Result<Explainer, String>>,
    maps: VecDeque<(PathBuf, Arc<CellMap>)>,
}

/// Feature maps kept: the pair on screen and a few recent ones.
const MAP_CACHE: usize = 8;

impl Heat {
    pub fn new(model: ModelConfig) -> Self {
        Heat {
            model,
            explainer: None,
            maps: VecDeque::new(),
        }
    }

    fn map(&mut self, path: &Path) -> Result<Arc<CellMap>, PreviewError> {
        if let Some((_, map)) = self.maps.iter().find(|(p, _)| p == path) {
            return Ok(map.clone());
        }
        let model = &self.model;
        let explainer = self
            .explainer
            .get_or_insert_with(|| Explainer::load(model).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| PreviewError::Heat(e.clone()))?;
        let map = Arc::new(
            explainer
                .cell_map(path)
                .map_err(|e| PreviewError::Heat(e.to_string()))?,
        );
        self.maps.push_back((path.to_path_buf(), map.clone()));
        if self.maps.len() > MAP_CACHE {
            self.maps.pop_front();
        }
        Ok(map)
    }

    /// `img` tinted red where it differs from the request's partner (by cell, the worst
    /// region outlined in yellow); `img` itself when the request has no partner.
    pub fn apply(
        &mut self,
        img: Arc<DynamicImage>,
        req: &PreviewRequest,
    ) -> Result<Arc<DynamicImage>, PreviewError> {
        let Some(against) = &req.against else {
            return Ok(img);
        };
        let (map, other) = (self.map(&req.path)?, self.map(against)?);
        let distances = explain::cell_distances(&map, &other);
        Ok(Arc::new(DynamicImage::ImageRgb8(tint(
            &img.to_rgb8(),
            &distances,
            map.side,
        ))))
    }
}

/// Blends red over each cell in proportion to its distance (the worst cell at 60 %) and
/// outlines the region `explain::region` reports.
fn tint(img: &RgbImage, distances: &[f32], side: usize) -> RgbImage {
    let (w, h) = img.dimensions();
    let worst = distances.iter().copied().fold(0f32, f32::max);
    let region = explain::region(distances, side, (w, h));
    let line = (w.min(h) / 100).max(2);
    RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0;
        if let Some([x0, y0, x1, y1]) = region {
            let inside = x >= x0 && x < x1 && y >= y0 && y < y1;
            let near_edge = x < x0 + line || x + line >= x1 || y < y0 + line || y + line >= y1;
            if inside && near_edge {
                return Rgb([255, 220, 0]);
            }
        }
        let cell = (y as usize * side / h as usize) * side + x as usize * side / w as usize;
        let a = if worst > 0.0 {
            0.6 * distances[cell] / worst
        } else {
            0.0
        };
        let blend = |c: u8, to: f32| (c as f32 * (1.0 - a) + to * a).round() as u8;
        Rgb([blend(r, 255.0), blend(g, 0.0), blend(b, 0.0)])
    })
}

/// Runs the preview worker until the request channel closes.
pub fn spawn(
    graphics: Graphics,
    heat: Heat,
    requests: Receiver<Vec<PreviewRequest>>,
    results: Sender<PreviewResult>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("preview".into())
        .spawn(move || worker(graphics, heat, requests, results))
        .expect("spawn preview thread")
}

fn worker(
    graphics: Graphics,
    mut heat: Heat,
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
                        let img = heat.apply(img, &req)?;
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
