//! Why an image ranks high: where it differs most from its closest match, and which of its
//! traits are furthest from the folder's median.
//!
//! **Where.** The model runs again on the two images and keeps a mid-level feature map
//! (EfficientNet-Lite0's `stage6`, 7 x 7 cells of 192 channels). Each cell of one image is
//! compared with the most similar cell anywhere in the other (so a shifted or rotated crystal
//! does not light up everywhere); the cell that matches worst, with the connected cells
//! nearly as bad, is the region, mapped back to the original image's pixels. `stage6` and
//! not the head: the head's 1280 channels mix the whole image and place a pasted patch up
//! to two cells away, where `stage6` places it in its own cell (measured on patched copies
//! of the bundled snowflakes, README "Explanations").
//!
//! **What.** The fused morphology traits as robust z-scores over the folder
//! (`traits::standardise`); the largest in magnitude are the image's most extreme traits,
//! reported with their value and percentile.

use crate::model::{Arch, FeatureModel, ModelConfig, ModelError};
use crate::preprocess::{self, DecodeError};
use crate::traits::{self, TRAITS};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Bumped whenever regions may come out differently for the same two images (the layer,
/// the cell comparison, `REGION_SHARE`), so that remembered ones are found again.
pub const VERSION: u32 = 1;

/// How many of an image's traits an explanation lists.
pub const TRAITS_LISTED: usize = 3;

/// A cell belongs to the region when it differs at least this share as much as the worst.
const REGION_SHARE: f32 = 0.8;

/// Why one image stands out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// `[x0, y0, x1, y1]` (x1, y1 exclusive) in pixels of the original image (after its EXIF
    /// orientation): the part that differs most from the closest match. `None` when there is
    /// no closest match or a picture could not be read again (`region_note` says why).
    pub region: Option<[u32; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_note: Option<String>,
    /// The most extreme traits, most extreme first.
    pub traits: Vec<TraitNote>,
}

/// One trait of one image, against the folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraitNote {
    pub name: &'static str,
    pub value: f32,
    /// Share of the folder's images with a smaller value (ties count half), 0-100.
    pub percentile: f32,
    /// Robust z-score: distance from the folder's median in robust standard deviations
    /// (clipped to +-6); its magnitude orders the list.
    pub z: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<candle_core::Error> for ExplainError {
    fn from(e: candle_core::Error) -> Self {
        ExplainError::Model(e.into())
    }
}

/// One image's feature map as a grid of cells, kept at 8 bits per value (one scale per
/// cell) so that a whole folder's maps fit in memory: 9.4 KB per image for `stage6`.
#[derive(Debug, Clone)]
pub struct CellMap {
    /// Cells per side (the map is side x side).
    pub side: usize,
    channels: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// The original image's width and height, in pixels.
    pub size: (u32, u32),
}

impl CellMap {
    /// `map` is channels x side x side (CHW), as the model writes it.
    fn quantise(map: &[f32], channels: usize, side: usize, size: (u32, u32)) -> Self {
        let cells = side * side;
        let mut codes = Vec::with_capacity(cells * channels);
        let mut scales = Vec::with_capacity(cells);
        for cell in 0..cells {
            let values = (0..channels).map(|c| map[c * cells + cell]);
            let scale = values.clone().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            codes.extend(values.map(|v| (v * inverse).round() as i8));
            scales.push(scale);
        }
        CellMap {
            side,
            channels,
            codes,
            scales,
            size,
        }
    }

    /// The cells as f32 vectors, cell after cell.
    fn cells(&self) -> Vec<f32> {
        self.codes
            .chunks_exact(self.channels)
            .zip(&self.scales)
            .flat_map(|(codes, &scale)| codes.iter().map(move |&q| q as f32 * scale))
            .collect()
    }
}

/// The model that draws the maps: the ranking's backbone and weights, stopped at the layer
/// whose cells place differences best.
pub struct Explainer {
    model: FeatureModel,
}

impl Explainer {
    pub fn load(cfg: &ModelConfig) -> Result<Self, ModelError> {
        let layer = match cfg.arch {
            Arch::EfficientNetLite0 => "stage6",
            Arch::Vgg16 => "block5_pool",
        };
        let cfg = ModelConfig {
            layer: Some(layer.into()),
            ..cfg.clone()
        };
        Ok(Explainer {
            model: FeatureModel::load(&cfg)?,
        })
    }

    /// Decodes `path` and runs the model up to the map.
    pub fn cell_map(&self, path: &Path) -> Result<CellMap, ExplainError> {
        let pp = &self.model.preprocess;
        let (input, size) = preprocess::prepare_with_size(path, pp)?;
        let s = pp.size as usize;
        let x = Tensor::from_vec(input, (1, 3, s, s), &Device::Cpu)?;
        let map = self.model.feature_map(&x)?;
        let (_, channels, h, w) = map.dims4()?;
        debug_assert_eq!(h, w, "square input, square map");
        let values = map.flatten_all()?.to_vec1::<f32>()?;
        Ok(CellMap::quantise(&values, channels, h, size))
    }

    /// The maps of many files (row, path), in parallel; an error for each file that could
    /// not be read.
    pub fn cell_maps(&self, files: &[(usize, &Path)]) -> Maps {
        files
            .par_iter()
            .map(|&(row, path)| (row, self.cell_map(path).map_err(|e| e.to_string())))
            .collect()
    }
}

/// For each cell of `a`: the L2 distance to the most similar cell of `b`.
pub fn cell_distances(a: &CellMap, b: &CellMap) -> Vec<f32> {
    let (va, vb) = (a.cells(), b.cells());
    let c = a.channels.min(b.channels);
    va.chunks_exact(a.channels)
        .map(|x| {
            vb.chunks_exact(b.channels)
                .map(|y| {
                    x[..c]
                        .iter()
                        .zip(&y[..c])
                        .map(|(p, q)| (p - q).powi(2))
                        .sum()
                })
                .fold(f32::INFINITY, f32::min)
                .sqrt()
        })
        .collect()
}

/// The worst cell of `distances` (side x side) and its 8-connected neighbours that differ
/// at least `REGION_SHARE` as much, as a box in the pixels of an image of `size`.
pub fn region(distances: &[f32], side: usize, size: (u32, u32)) -> Option<[u32; 4]> {
    let worst = (0..distances.len()).max_by(|&i, &j| distances[i].total_cmp(&distances[j]))?;
    let bar = distances[worst] * REGION_SHARE;
    let (mut rows, mut cols) = ((worst / side, worst / side), (worst % side, worst % side));
    let mut seen = vec![false; distances.len()];
    let mut stack = vec![worst];
    seen[worst] = true;
    while let Some(cell) = stack.pop() {
        let (r, c) = (cell / side, cell % side);
        rows = (rows.0.min(r), rows.1.max(r));
        cols = (cols.0.min(c), cols.1.max(c));
        for dr in -1isize..=1 {
            for dc in -1isize..=1 {
                let (nr, nc) = (r as isize + dr, c as isize + dc);
                if nr < 0 || nc < 0 || nr >= side as isize || nc >= side as isize {
                    continue;
                }
                let next = nr as usize * side + nc as usize;
                if !seen[next] && distances[next] >= bar {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
    }
    // The model saw the image squeezed to a square: cell edges scale per axis.
    let edge = |cell: usize, pixels: u32| (cell as u64 * pixels as u64 / side as u64) as u32;
    Some([
        edge(cols.0, size.0),
        edge(rows.0, size.1),
        edge(cols.1 + 1, size.0),
        edge(rows.1 + 1, size.1),
    ])
}

/// A folder's traits, ready to place one image's values against: their scales and each
/// fused trait's sorted values (for percentiles).
#[derive(Debug, Clone)]
pub struct TraitStats {
    scales: traits::Scales,
    sorted: Vec<Vec<f32>>,
}

impl TraitStats {
    /// From the folder's traits rows (n x `traits::COUNT`); `None` when there are none.
    pub fn of(rows: &[f32]) -> Option<Self> {
        let n = rows.len() / traits::COUNT;
        if n == 0 {
            return None;
        }
        // Values equal under `total_cmp` are the same bits: an unstable sort gives the one
        // order.
        let sorted = traits::FUSED
            .par_iter()
            .map(|&j| {
                let mut column: Vec<f32> = (0..n).map(|i| rows[i * traits::COUNT + j]).collect();
                column.par_sort_unstable_by(f32::total_cmp);
                column
            })
            .collect();
        Some(TraitStats {
            scales: traits::Scales::of(rows),
            sorted,
        })
    }

    /// The `listed` most extreme fused traits of one image's `values`, most extreme first;
    /// traits at the folder's median (z = 0) are not extreme and are left out.
    pub fn notes(&self, values: &[f32], listed: usize) -> Vec<TraitNote> {
        if values.len() != traits::COUNT {
            return Vec::new();
        }
        let mut notes: Vec<TraitNote> = traits::FUSED
            .iter()
            .zip(&self.sorted)
            .map(|(&j, column)| {
                let value = values[j];
                let below = column.partition_point(|&v| v < value);
                let equal = column[below..].partition_point(|&v| v <= value);
                TraitNote {
                    name: TRAITS[j].0,
                    value,
                    percentile: 100.0 * (below as f32 + 0.5 * equal as f32) / column.len() as f32,
                    z: self.scales.z(j, value),
                }
            })
            .filter(|note| note.z != 0.0)
            .collect();
        // Stable: equally extreme traits keep their TRAITS order.
        notes.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
        notes.truncate(listed);
        notes
    }
}

/// Maps by image row, or why an image has none.
pub type Maps = std::collections::HashMap<usize, Result<CellMap, String>>;

/// The region of each pair (image, its closest match or `None`), given the maps of the
/// images involved, or why there is none.
pub fn regions(pairs: &[(usize, Option<usize>)], maps: &Maps) -> Vec<Result<[u32; 4], String>> {
    let missing = Err("no feature map".to_string());
    pairs
        .par_iter()
        .map(|&(image, closest)| {
            let map_of = |i: usize| maps.get(&i).unwrap_or(&missing);
            let Some(closest) = closest else {
                return Err("no closest match".to_string());
            };
            let map = map_of(image).as_ref().map_err(Clone::clone)?;
            let other = map_of(closest)
                .as_ref()
                .map_err(|why| format!("closest match: {why}"))?;
            region(&cell_distances(map, other), map.side, map.size)
                .ok_or_else(|| "an empty feature map".to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3 x 3 map of 2 channels whose cells are all (1, 0) but `odd`, which is (0, 5).
    fn map(odd: Option<usize>) -> CellMap {
        let mut chw = vec![0.0; 2 * 9];
        for cell in 0..9 {
            if Some(cell) == odd {
                chw[9 + cell] = 5.0;
            } else {
                chw[cell] = 1.0;
            }
        }
        CellMap::quantise(&chw, 2, 3, (300, 150))
    }

    #[test]
    fn the_cell_without_a_counterpart_is_the_region_in_original_pixels() {
        let d = cell_distances(&map(Some(5)), &map(None));
        assert_eq!(d.iter().filter(|&&v| v > 0.0).count(), 1, "{d:?}");
        // Cell 5 is row 1, column 2: x 200..300 of 300, y 50..100 of 150.
        assert_eq!(region(&d, 3, (300, 150)), Some([200, 50, 300, 100]));
        // A cell that moved still has its counterpart: nothing differs.
        let moved = cell_distances(&map(Some(0)), &map(Some(8)));
        assert!(moved.iter().all(|&v| v < 1e-6), "{moved:?}");
    }

    #[test]
    fn the_region_grows_over_connected_cells_nearly_as_bad() {
        let mut d = vec![0.0; 16];
        d[5] = 10.0;
        d[6] = 9.0; // connected and within REGION_SHARE
        d[15] = 9.5; // as bad, but not connected
        assert_eq!(region(&d, 4, (40, 40)), Some([10, 10, 30, 20]));
        assert_eq!(region(&[], 0, (40, 40)), None);
    }

    #[test]
    fn quantised_cells_keep_their_values_within_a_percent() {
        let chw: Vec<f32> = (0..2 * 4).map(|i| i as f32 * 0.37 - 1.1).collect();
        let m = CellMap::quantise(&chw, 2, 2, (1, 1));
        let cells = m.cells();
        for cell in 0..4 {
            for c in 0..2 {
                let want = chw[c * 4 + cell];
                assert!((cells[cell * 2 + c] - want).abs() < 0.01, "{cell} {c}");
            }
        }
    }

    #[test]
    fn the_most_extreme_traits_come_first_with_their_percentiles() {
        // Ten images alike but for the last, which is far larger and a little rounder.
        let mut rows = Vec::new();
        for i in 0..10 {
            let mut t = [1.0f32; traits::COUNT];
            t[traits::index("area")] = if i == 9 { 5000.0 } else { 100.0 + i as f32 };
            t[traits::index("circularity")] = 0.5 + 0.01 * i as f32;
            rows.extend(t);
        }
        let stats = TraitStats::of(&rows).unwrap();
        let notes: Vec<_> = rows
            .chunks_exact(traits::COUNT)
            .map(|values| stats.notes(values, TRAITS_LISTED))
            .collect();
        assert_eq!(notes.len(), 10);
        let last = &notes[9];
        assert_eq!(last[0].name, "area");
        assert_eq!(last[0].value, 5000.0);
        assert_eq!(last[0].percentile, 95.0);
        assert!(last[0].z > last[1].z.abs(), "{last:?}");
        assert!(last.len() <= TRAITS_LISTED);
        assert_eq!(notes[0][0].percentile.min(notes[0][1].percentile), 5.0);
        assert!(TraitStats::of(&[]).is_none());
    }
}
