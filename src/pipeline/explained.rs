//! A ranking's marks and explanations, filled from its feature set: which images the user
//! marked (by content), and why each listed image stands out (`explain`), with the regions
//! found remembered beside the feature cache.

use super::FeatureSet;
use crate::explain;
use crate::model::{ModelConfig, ModelError};
use crate::rank::Ranking;
use crate::store::{Marks, regions};
use std::path::Path;

impl FeatureSet {
    /// Sets `marked` on each ranked image whose content is in `marks`.
    pub fn apply_marks(&self, ranking: &mut Ranking, marks: &Marks) {
        for image in &mut ranking.images {
            image.marked = marks.contains(&self.items[image.index].hash);
        }
    }

    /// Explains the images at `positions` in `ranking.images`: where each differs from its
    /// closest match (the model runs again on those images and their matches) and its most
    /// extreme traits. `model` must be the configuration the set was made with.
    pub fn explain(
        &self,
        ranking: &mut Ranking,
        positions: &[usize],
        model: &ModelConfig,
    ) -> Result<(), ModelError> {
        let pairs: Vec<(usize, Option<usize>)> = positions
            .iter()
            .map(|&p| (ranking.images[p].index, ranking.images[p].closest))
            .collect();
        // Regions found before are kept beside the cache: each costs two model runs.
        let file = self.neighbour_cache.as_deref().map(regions::file_beside);
        let mut known = file
            .as_deref()
            .map_or_else(Default::default, |f| regions::load(f, explain::VERSION));
        let key = |(i, c): (usize, usize)| regions::key(&self.items[i].hash, &self.items[c].hash);
        let todo: Vec<(usize, Option<usize>)> = pairs
            .iter()
            .copied()
            .filter(|&(i, c)| c.is_none_or(|c| !known.contains_key(&key((i, c)))))
            .collect();
        let mut rows: Vec<usize> = todo
            .iter()
            .flat_map(|&(i, c)| [Some(i), c])
            .flatten()
            .collect();
        rows.sort_unstable();
        rows.dedup();
        let found = if rows.is_empty() {
            Vec::new()
        } else {
            let files: Vec<(usize, &Path)> = rows
                .iter()
                .map(|&i| (i, self.items[i].path.as_path()))
                .collect();
            let maps = explain::Explainer::load(model)?.cell_maps(&files);
            explain::regions(&todo, &maps)
        };
        let mut notes_of_todo = std::collections::HashMap::new();
        for (&(i, c), region) in todo.iter().zip(found) {
            match (c, region) {
                (Some(c), Ok(region)) => {
                    known.insert(key((i, c)), region);
                }
                (_, Err(why)) => {
                    notes_of_todo.insert(i, why);
                }
                (None, Ok(_)) => {}
            }
        }
        if !todo.is_empty()
            && let Some(file) = &file
        {
            // Best effort: without the file the regions are found again next time.
            let _ = regions::save(file, explain::VERSION, &known);
        }
        // Only the listed images' traits are placed: the folder's scales are made once.
        let stats = explain::TraitStats::of(&self.traits);
        for (&p, &(i, c)) in positions.iter().zip(&pairs) {
            let region = c.and_then(|c| known.get(&key((i, c))).copied());
            ranking.images[p].explanation = Some(explain::Explanation {
                region,
                region_note: region.is_none().then(|| {
                    notes_of_todo
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| "no closest match".into())
                }),
                traits: match (&stats, self.traits_of(i)) {
                    (Some(stats), Some(values)) => stats.notes(values, explain::TRAITS_LISTED),
                    _ => Vec::new(),
                },
            });
        }
        Ok(())
    }
}
