//! Synthetic snow-crystal photographs for testing and demonstrating snowscope.
//!
//! Crystals are grown with Reiter's local cellular model (see [`reiter`]),
//! arranged into common and rare habits (see [`morphology`]) and rendered to
//! look like dark-field photomicrographs (see [`render`]). A data set is a
//! folder of `snowflake_NNNN.png` files plus `manifest.json` saying what each
//! one is, so that "which images are unusual" has a known answer.
//!
//! Everything is a pure function of the seed: each crystal draws from its own
//! random stream, so the bytes do not depend on the number of threads.

pub mod morphology;
pub mod reiter;
pub mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
pub use morphology::Morphology;
use morphology::Specimen;
use reiter::Crystal;
use render::Look;

/// Written into the manifest so a data set names the code that made it.
pub const GENERATOR: &str = "snowscope synth: Reiter (2005) local cellular model, v1";

/// What to generate. The CLI's `snowscope synth` flags map one to one.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Number of distinct crystals; the copies and near copies are written on top (see
    /// `with_total` for a total that includes them).
    pub crystals: usize,
    pub seed: u64,
    /// Share of the distinct crystals that get a rare habit.
    pub rare_fraction: f64,
    /// Image width and height in pixels.
    pub size: u32,
    pub out: PathBuf,
    /// Extra files that are byte-identical copies of common crystals.
    pub duplicates: usize,
    /// Extra files that re-photograph a common crystal with a new pose and noise.
    pub near_duplicates: usize,
}

impl Default for SynthConfig {
    /// The bundled data set's settings (see data/snowflakes/README.md): 186 images.
    fn default() -> Self {
        Self {
            crystals: 180,
            seed: 2026,
            rare_fraction: 0.03,
            size: 224,
            out: PathBuf::from("data/snowflakes"),
            duplicates: 3,
            near_duplicates: 3,
        }
    }
}

impl SynthConfig {
    /// Images written in all: the distinct crystals, their copies and near copies.
    pub fn total(&self) -> usize {
        self.crystals + self.duplicates + self.near_duplicates
    }

    /// Sets the number of distinct crystals so that `total` images are written in all,
    /// copies and near copies included.
    pub fn with_total(mut self, total: usize) -> Result<Self, SynthError> {
        let copies = self.duplicates + self.near_duplicates;
        if total <= copies {
            return Err(SynthError::Config(format!(
                "{total} images cannot hold {} copies and {} near copies and a crystal",
                self.duplicates, self.near_duplicates
            )));
        }
        self.crystals = total - copies;
        Ok(self)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    pub seed: u64,
    pub images: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub file: String,
    pub morphology: String,
    pub rare: bool,
    /// Seed, growth parameters, layout and camera look of the picture.
    pub params: serde_json::Value,
    pub duplicate_of: Option<String>,
    pub near_duplicate_of: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] image::ImageError),
    #[error("invalid synth configuration: {0}")]
    Config(String),
}

/// How many of `count` crystals are rare: `round(count * fraction)`, but at
/// least one whenever the fraction is positive so a small set still has an
/// outlier to find.
pub fn rare_count(count: usize, rare_fraction: f64) -> usize {
    if rare_fraction <= 0.0 || count == 0 {
        return 0;
    }
    ((count as f64 * rare_fraction).round() as usize).clamp(1, count)
}

/// A specimen with its crystals grown, ready to be photographed any number of times.
struct Grown {
    specimen: Specimen,
    crystals: Vec<Crystal>,
    look: Look,
    seed: u64,
}

impl Grown {
    fn new(morphology: Morphology, seed: u64, size: u32) -> Self {
        let mut rng = Rng::new(seed);
        let specimen = morphology::plan(morphology, &mut rng, size);
        let look = Look::random(&mut rng);
        let crystals = grow_specimen(&specimen);
        Self {
            specimen,
            crystals,
            look,
            seed,
        }
    }

    fn render(&self, look: &Look, size: u32) -> RgbImage {
        render::render(&self.crystals, &self.specimen, look, size)
    }

    fn params(&self, look: &Look) -> serde_json::Value {
        let growth: Vec<_> = self
            .specimen
            .growth
            .iter()
            .zip(&self.crystals)
            .map(|(p, c)| serde_json::json!({ "model": p, "steps": c.steps, "extent_cells": c.extent }))
            .collect();
        serde_json::json!({
            "seed": self.seed,
            "growth": growth,
            "layers": self.specimen.layers,
            "broken_arm": self.specimen.broken,
            "look": look,
        })
    }
}

/// Grow every crystal of a specimen and apply any damage.
fn grow_specimen(specimen: &Specimen) -> Vec<Crystal> {
    let mut crystals: Vec<Crystal> = specimen.growth.iter().map(reiter::grow).collect();
    if let Some(b) = specimen.broken {
        morphology::break_arm(&mut crystals[0], b);
    }
    crystals
}

/// Grow and photograph one crystal of the given habit.
pub fn grow_and_render(morphology: Morphology, seed: u64, size: u32) -> RgbImage {
    let grown = Grown::new(morphology, seed, size);
    grown.render(&grown.look, size)
}

/// One file of the data set, before rendering.
#[derive(Debug, Clone)]
enum Job {
    Original {
        morphology: Morphology,
        seed: u64,
    },
    /// Same crystal as original `of`, re-photographed with `seed`'s nudge.
    Near {
        of: usize,
        seed: u64,
    },
    /// Byte copy of original `of`.
    Copy {
        of: usize,
    },
}

/// Decide every file's content from the master seed, sequentially, so the
/// parallel part only executes a fixed plan.
fn plan_jobs(cfg: &SynthConfig) -> Vec<Job> {
    let mut rng = Rng::new(cfg.seed);
    let rare = rare_count(cfg.crystals, cfg.rare_fraction);
    let mut morphs: Vec<Morphology> = (0..cfg.crystals - rare)
        .map(|k| Morphology::COMMON[k % 4])
        .collect();
    // Cycle through a shuffled list of rare habits so a handful are all different.
    let mut rare_kinds = Morphology::RARE.to_vec();
    rng.shuffle(&mut rare_kinds);
    morphs.extend((0..rare).map(|k| rare_kinds[k % rare_kinds.len()]));
    rng.shuffle(&mut morphs);
    let mut jobs: Vec<Job> = morphs
        .iter()
        .enumerate()
        .map(|(i, &morphology)| Job::Original {
            morphology,
            seed: Rng::derive(cfg.seed, i as u64).next_u64(),
        })
        .collect();

    let mut commons: Vec<usize> = (0..cfg.crystals)
        .filter(|&i| !morphs[i].is_rare())
        .collect();
    rng.shuffle(&mut commons);
    let mut sources = commons.iter().copied().cycle();
    for _ in 0..cfg.duplicates {
        jobs.push(Job::Copy {
            of: sources.next().unwrap_or(0),
        });
    }
    for _ in 0..cfg.near_duplicates {
        jobs.push(Job::Near {
            of: sources.next().unwrap_or(0),
            seed: rng.next_u64(),
        });
    }
    jobs
}

/// Generate a data set into `cfg.out`: PNGs plus `manifest.json`.
/// `progress(done, total)` is called after each file.
pub fn generate(
    cfg: &SynthConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Manifest, SynthError> {
    validate(cfg)?;
    std::fs::create_dir_all(&cfg.out).map_err(|source| SynthError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    let jobs = plan_jobs(cfg);
    // Shuffle file numbers so copies and rare crystals are not bunched at the end.
    let mut numbers: Vec<usize> = (1..=jobs.len()).collect();
    Rng::derive(cfg.seed, u64::MAX).shuffle(&mut numbers);
    let width = jobs.len().to_string().len().max(4);
    let names: Vec<String> = numbers
        .iter()
        .map(|n| format!("snowflake_{n:0width$}.png"))
        .collect();

    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
    // Originals and near duplicates render in parallel; each is independent.
    let rendered: Vec<Option<(Vec<u8>, ManifestEntry)>> = (0..jobs.len())
        .into_par_iter()
        .map(|k| {
            let out = render_job(cfg, &jobs, &names, k)?;
            if let Some((bytes, entry)) = &out {
                write_file(&cfg.out.join(&entry.file), bytes)?;
                tick();
            }
            Ok(out)
        })
        .collect::<Result<_, SynthError>>()?;

    let mut images = Vec::with_capacity(total);
    for (k, job) in jobs.iter().enumerate() {
        match (job, &rendered[k]) {
            (Job::Copy { of }, _) => {
                let (bytes, original) = rendered[*of]
                    .as_ref()
                    .expect("copies point at rendered originals");
                write_file(&cfg.out.join(&names[k]), bytes)?;
                tick();
                images.push(ManifestEntry {
                    file: names[k].clone(),
                    duplicate_of: Some(original.file.clone()),
                    ..original.clone()
                });
            }
            (_, Some((_, entry))) => images.push(entry.clone()),
            (_, None) => unreachable!("every non-copy job is rendered"),
        }
    }
    images.sort_by(|a, b| a.file.cmp(&b.file));
    let manifest = Manifest {
        generator: GENERATOR.to_string(),
        seed: cfg.seed,
        images,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    write_file(&cfg.out.join("manifest.json"), &json)?;
    Ok(manifest)
}

fn validate(cfg: &SynthConfig) -> Result<(), SynthError> {
    if !(0.0..=1.0).contains(&cfg.rare_fraction) {
        return Err(SynthError::Config(format!(
            "rare fraction {} is not in [0, 1]",
            cfg.rare_fraction
        )));
    }
    if cfg.size < 16 {
        return Err(SynthError::Config(format!(
            "size {} px is too small (minimum 16)",
            cfg.size
        )));
    }
    let commons = cfg.crystals - rare_count(cfg.crystals, cfg.rare_fraction);
    if commons == 0 && cfg.duplicates + cfg.near_duplicates > 0 {
        return Err(SynthError::Config(
            "duplicates need at least one common crystal".into(),
        ));
    }
    Ok(())
}

/// Render job `k`; copies return `None` (they reuse their original's bytes).
fn render_job(
    cfg: &SynthConfig,
    jobs: &[Job],
    names: &[String],
    k: usize,
) -> Result<Option<(Vec<u8>, ManifestEntry)>, SynthError> {
    let (morphology, seed, nudge) = match jobs[k] {
        Job::Copy { .. } => return Ok(None),
        Job::Original { morphology, seed } => (morphology, seed, None),
        Job::Near { of, seed: nudge } => match jobs[of] {
            Job::Original { morphology, seed } => (morphology, seed, Some((of, nudge))),
            _ => unreachable!("near duplicates point at originals"),
        },
    };
    let grown = Grown::new(morphology, seed, cfg.size);
    let look = match nudge {
        Some((_, n)) => grown.look.nudged(&mut Rng::new(n)),
        None => grown.look.clone(),
    };
    let bytes = encode_png(&grown.render(&look, cfg.size))?;
    let entry = ManifestEntry {
        file: names[k].clone(),
        morphology: morphology.name().to_string(),
        rare: morphology.is_rare(),
        params: grown.params(&look),
        duplicate_of: None,
        near_duplicate_of: nudge.map(|(of, _)| names[of].clone()),
    };
    Ok(Some((bytes, entry)))
}

/// PNG at the best compression: the data set ships in the repository.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, SynthError> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )?;
    Ok(bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let io = |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests;
