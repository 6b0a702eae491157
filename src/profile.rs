//! Which features rank a folder. Real snow crystals are told apart by shape and texture
//! (mid-level CNN features) and by their morphology; photos by what they show (the CNN's
//! head). The profile picks one of the two per folder, and builds the matrix the nearest
//! neighbour search runs on. The choice and its numbers: README, "Ranking quality".

use crate::pipeline::FeatureSet;
use crate::traits;
use serde::Serialize;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Crystals when most images show an isolated particle on a plain background.
    #[default]
    Auto,
    /// Mid-level CNN features (`stage6`) fused with the morphology traits.
    Crystals,
    /// The CNN's head embedding alone.
    Photos,
}

/// The profile a folder is ranked with, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Choice {
    pub profile: Profile,
    pub reason: String,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Auto => "auto",
            Profile::Crystals => "crystals",
            Profile::Photos => "photos",
        })
    }
}

/// The layer the crystals profile ranks by, and the one photos are ranked by.
pub const CRYSTAL_LAYER: &str = "stage6";
pub const PHOTO_LAYER: &str = "head";
/// Weight of the standardised traits against the unit-length CNN vector (chosen by
/// `cargo bench --bench planted_outliers`).
pub const TRAIT_WEIGHT: f32 = 0.1;
/// An image shows an isolated particle when at least this share of its border lies on the
/// background side of the segmentation threshold...
const PLAIN_BORDER: f32 = 0.75;
/// ...and a folder is crystals when at least this share of its images do.
const CRYSTAL_SHARE: f32 = 0.5;

/// Resolves `Auto` from the folder's traits (n x `traits::COUNT`, empty when unknown).
pub fn choose(asked: Profile, traits_rows: &[f32]) -> Choice {
    let n = traits_rows.len() / traits::COUNT;
    match asked {
        Profile::Crystals | Profile::Photos => Choice {
            profile: asked,
            reason: "asked for".into(),
        },
        Profile::Auto if n == 0 => Choice {
            profile: Profile::Photos,
            reason: "no morphology traits for these features".into(),
        },
        Profile::Auto => {
            let border = traits::index("border_background");
            let plain = traits_rows
                .chunks_exact(traits::COUNT)
                .filter(|t| t[border] >= PLAIN_BORDER && t[traits::index("particles")] >= 1.0)
                .count();
            let share = plain as f32 / n as f32;
            let profile = if share >= CRYSTAL_SHARE {
                Profile::Crystals
            } else {
                Profile::Photos
            };
            Choice {
                profile,
                reason: format!(
                    "auto: {:.0} % of images show one particle on a plain background",
                    100.0 * share
                ),
            }
        }
    }
}

/// The matrix the search runs on (n x dim) for `choice`: the profile's CNN block
/// (L2-normalised when `normalise`), for crystals followed by the folder-standardised
/// traits, weighted by [`TRAIT_WEIGHT`] / sqrt(traits used).
pub fn embedding(set: &FeatureSet, choice: &Choice, normalise: bool) -> (Vec<f32>, usize) {
    let crystals = choice.profile == Profile::Crystals;
    let wanted = if crystals { CRYSTAL_LAYER } else { PHOTO_LAYER };
    let (offset, width) = set.block(wanted);
    let n = set.items.len();
    let mut cnn: Vec<f32> = (0..n)
        .flat_map(|i| set.row(i)[offset..offset + width].iter().copied())
        .collect();
    if normalise {
        crate::rank::normalise_rows(&mut cnn, width);
    }
    if !crystals || set.traits.len() != n * traits::COUNT {
        return (cnn, width);
    }
    let z = traits::standardise(&set.traits);
    let fused_dim = width + traits::FUSED.len();
    let weight = TRAIT_WEIGHT / (traits::FUSED.len() as f32).sqrt();
    let mut out = Vec::with_capacity(n * fused_dim);
    for i in 0..n {
        out.extend_from_slice(&cnn[i * width..(i + 1) * width]);
        let row = &z[i * traits::COUNT..(i + 1) * traits::COUNT];
        out.extend(traits::FUSED.iter().map(|&j| weight * row[j]));
    }
    (out, fused_dim)
}
