//! The batch pipeline: a pool of decoder threads prepares images while the model runs on
//! the previous batch; results and skips come back batch by batch.

use crate::model::{FeatureModel, ModelError};
use crate::preprocess::{DecodeError, prepare_with_traits};
use crate::traits::Traits;
use crossbeam_channel::bounded;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// One image to extract; `id` is the caller's handle for it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: usize,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    pub batch_size: usize,
    /// Decoder threads (the model uses the global rayon pool).
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot start the decoder threads: {0}")]
    ThreadPool(rayon::ThreadPoolBuildError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// (job id, feature row): the model's features, then the image's [`crate::traits`]
    pub rows: Vec<(usize, Vec<f32>)>,
    /// (job id, why it was skipped)
    pub skipped: Vec<(usize, DecodeError)>,
    /// The last job of the batch, for "current file" displays.
    pub last: Option<usize>,
}

/// Runs every job through decode + model, calling `on_batch` after each batch. Stops early
/// (without error) when `cancel` is set; finished batches have been delivered by then.
pub fn run(
    model: &FeatureModel,
    jobs: &[Job],
    opts: ExtractOptions,
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(BatchResult),
) -> Result<(), ExtractError> {
    let batch_size = opts.batch_size.max(1);
    let pp = model.preprocess;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("decode-{i}"))
        .build()
        .map_err(ExtractError::ThreadPool)?;
    // Two batches in flight: decoding runs one batch ahead of the model, memory stays bounded.
    let (tx, rx) = bounded::<Vec<(usize, Result<(Vec<f32>, Traits), DecodeError>)>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in jobs.chunks(batch_size) {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let decoded = pool.install(|| {
                    chunk
                        .par_iter()
                        .map(|j| (j.id, prepare_with_traits(&j.path, &pp)))
                        .collect()
                });
                if tx.send(decoded).is_err() {
                    break; // the model side stopped
                }
            }
        });
        for decoded in rx {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let mut result = BatchResult {
                last: decoded.last().map(|d| d.0),
                ..Default::default()
            };
            let mut images = Vec::with_capacity(decoded.len());
            let mut ids = Vec::with_capacity(decoded.len());
            let mut traits = Vec::with_capacity(decoded.len());
            for (id, prepared) in decoded {
                match prepared {
                    Ok((pixels, measured)) => {
                        images.push(pixels);
                        ids.push(id);
                        traits.push(measured);
                    }
                    Err(e) => result.skipped.push((id, e)),
                }
            }
            if !ids.is_empty() {
                let images: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
                let (features, dim) = model.features(&images)?;
                result.rows = ids
                    .into_iter()
                    .zip(features.chunks_exact(dim).zip(traits))
                    .map(|(id, (row, traits))| (id, [row, &traits.values].concat()))
                    .collect();
            }
            on_batch(result);
        }
        Ok(())
    })
}
