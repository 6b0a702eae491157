//! Which features rank a folder. Real snow crystals are told apart by shape and texture
//! (mid-level CNN features) and by their morphology; photos by what they show (the CNN's
//! head). The profile picks one of the two per folder, and builds the matrix the nearest
//! neighbour search runs on. The choice and its numbers: README, "Ranking quality".

use crate::traits;
use serde::Serialize;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Crystals when most images show one particle on a plain background, in grey or one
    /// tint (as imaging probes record); photos otherwise.
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

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.profile, self.reason)
    }
}

/// The layer the crystals profile ranks by, and the one photos are ranked by.
pub const CRYSTAL_LAYER: &str = "stage6";
pub const PHOTO_LAYER: &str = "head";
/// Weight of the standardised traits against the unit-length CNN vector (chosen by
/// `cargo bench --bench planted_outliers`).
pub const TRAIT_WEIGHT: f32 = 0.1;
/// An image is an instrument's view of a particle when at least this share of its border
/// lies on the background side of the segmentation threshold and its hue varies less than
/// `ONE_TINT` (imaging probes record intensity: grey, or false-coloured in one tint; product
/// photos on white are in colour)...
const PLAIN_BORDER: f32 = 0.75;
const ONE_TINT: f32 = 0.1;
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
            let hue = traits::index("hue_variation");
            let plain = traits_rows
                .chunks_exact(traits::COUNT)
                .filter(|t| {
                    t[border] >= PLAIN_BORDER
                        && t[hue] < ONE_TINT
                        && t[traits::index("particles")] >= 1.0
                })
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
                    "auto: {:.0} % of images show one particle on a plain background, in grey or one tint",
                    100.0 * share
                ),
            }
        }
    }
}

/// How the search vectors are built: which CNN block (if any) and how much the traits weigh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion<'a> {
    /// The CNN block; `None` ranks by the traits alone.
    pub layer: Option<&'a str>,
    /// Weight of the standardised traits; 0 leaves them out.
    pub trait_weight: f32,
}

impl Profile {
    /// The fusion this (resolved) profile ranks with.
    pub fn fusion(&self) -> Fusion<'static> {
        match self {
            Profile::Crystals => Fusion {
                layer: Some(CRYSTAL_LAYER),
                trait_weight: TRAIT_WEIGHT,
            },
            Profile::Auto | Profile::Photos => Fusion {
                layer: Some(PHOTO_LAYER),
                trait_weight: 0.0,
            },
        }
    }
}

/// The matrix the search runs on (n x dim): the columns `block` (offset, width) of the
/// CNN rows `data` (n x `stride`), L2-normalised when `normalise`, followed (when the
/// fusion weighs them and they are known) by the traits (n x `traits::COUNT`) standardised
/// over these rows, weighted by `trait_weight` / sqrt(traits used).
pub fn embedding(
    fusion: &Fusion,
    block: Option<(usize, usize)>,
    data: &[f32],
    stride: usize,
    traits_rows: &[f32],
    normalise: bool,
) -> (Vec<f32>, usize) {
    let rows = data.chunks_exact(stride.max(1));
    embedding_of_rows(fusion, block, rows, traits_rows, normalise)
}

/// `embedding` of CNN rows handed over one at a time (from the memory-mapped feature cache).
pub fn embedding_of_rows<R: AsRef<[f32]>>(
    fusion: &Fusion,
    block: Option<(usize, usize)>,
    rows: impl ExactSizeIterator<Item = R>,
    traits_rows: &[f32],
    normalise: bool,
) -> (Vec<f32>, usize) {
    // Without a CNN block the traits alone say how many images there are.
    let n = match block {
        Some(_) => rows.len(),
        None => traits_rows.len() / traits::COUNT,
    };
    let (offset, width) = block.unwrap_or((0, 0));
    let mut cnn: Vec<f32> = Vec::with_capacity(n * width);
    if width > 0 {
        for row in rows {
            cnn.extend_from_slice(&row.as_ref()[offset..offset + width]);
        }
    }
    if normalise && width > 0 {
        crate::linalg::normalise_rows(&mut cnn, width);
    }
    let fused_dim = embedding_width(fusion, block, n, traits_rows);
    if fused_dim == width {
        return (cnn, width);
    }
    let z = traits::standardise(traits_rows);
    let weight = fusion.trait_weight / (traits::FUSED.len() as f32).sqrt();
    let mut out = Vec::with_capacity(n * fused_dim);
    for (i, z) in z.chunks_exact(traits::COUNT).enumerate() {
        out.extend_from_slice(&cnn[i * width..(i + 1) * width]);
        out.extend(traits::FUSED.iter().map(|&j| weight * z[j]));
    }
    (out, fused_dim)
}

/// The width of the `embedding` of `n` rows, known without making it.
pub fn embedding_width(
    fusion: &Fusion,
    block: Option<(usize, usize)>,
    n: usize,
    traits_rows: &[f32],
) -> usize {
    let width = block.map_or(0, |b| b.1);
    let with_traits = fusion.trait_weight > 0.0 && traits_rows.len() == n * traits::COUNT;
    width + if with_traits { traits::FUSED.len() } else { 0 }
}

/// `embedding` of a matrix that is no longer needed: where the profile searches the rows
/// as they are (the whole row, no traits) they are normalised in place, without a copy;
/// otherwise the embedding is built and `data` freed.
pub fn embedding_of(
    fusion: &Fusion,
    block: Option<(usize, usize)>,
    mut data: Vec<f32>,
    stride: usize,
    traits_rows: &[f32],
    normalise: bool,
) -> (Vec<f32>, usize) {
    let n = data.len() / stride.max(1);
    let whole = block == Some((0, stride)) && stride > 0;
    if !whole || embedding_width(fusion, block, n, traits_rows) != stride {
        return embedding(fusion, block, &data, stride, traits_rows, normalise);
    }
    if normalise {
        crate::linalg::normalise_rows(&mut data, stride);
    }
    (data, stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Traits rows with the framing and colour measures set, everything else 1.
    fn rows(framings: &[(f32, f32)]) -> Vec<f32> {
        framings
            .iter()
            .flat_map(|&(border, hue)| {
                let mut t = [1.0; traits::COUNT];
                t[traits::index("border_background")] = border;
                t[traits::index("hue_variation")] = hue;
                t
            })
            .collect()
    }

    #[test]
    fn auto_chooses_crystals_for_grey_particles_and_photos_for_colour() {
        let probe = rows(&[(1.0, 0.0), (0.9, 0.02), (0.8, 0.0), (0.3, 0.0)]);
        assert_eq!(choose(Profile::Auto, &probe).profile, Profile::Crystals);
        let products = rows(&[(1.0, 0.6), (0.95, 0.3), (1.0, 0.05), (0.9, 0.4)]);
        assert_eq!(choose(Profile::Auto, &products).profile, Profile::Photos);
        let scenes = rows(&[(0.5, 0.0), (0.6, 0.0), (0.4, 0.0)]);
        assert_eq!(choose(Profile::Auto, &scenes).profile, Profile::Photos);
        assert_eq!(choose(Profile::Auto, &[]).profile, Profile::Photos);
        assert_eq!(
            choose(Profile::Crystals, &products).profile,
            Profile::Crystals,
            "asked for wins"
        );
    }

    #[test]
    fn the_crystals_embedding_appends_weighted_traits_to_the_unit_cnn_block() {
        // Two images, rows [a a | b b b]: block (2, 3) is the second part.
        let data = [9.0, 9.0, 3.0, 0.0, 4.0, 9.0, 9.0, 0.0, 5.0, 0.0];
        let mut traits_rows = rows(&[(1.0, 0.0), (1.0, 0.0)]);
        traits_rows[0] = 100.0; // the first image's area differs
        let (v, dim) = embedding(
            &Profile::Crystals.fusion(),
            Some((2, 3)),
            &data,
            5,
            &traits_rows,
            true,
        );
        assert_eq!(dim, 3 + traits::FUSED.len());
        assert_eq!(&v[..3], &[0.6, 0.0, 0.8]);
        assert_eq!(&v[dim..dim + 3], &[0.0, 1.0, 0.0]);
        assert!(v[3] != 0.0 && v[3].abs() <= TRAIT_WEIGHT * 6.0, "{}", v[3]);
        assert!(
            v[4..dim].iter().all(|&z| z == 0.0),
            "constant traits add nothing"
        );
        let (photos, dim) = embedding(
            &Profile::Photos.fusion(),
            Some((2, 3)),
            &data,
            5,
            &traits_rows,
            false,
        );
        assert_eq!((dim, &photos[..3]), (3, &[3.0, 0.0, 4.0][..]));
    }

    #[test]
    fn an_embedding_of_an_owned_matrix_is_the_same_embedding() {
        let data = vec![9.0, 9.0, 3.0, 0.0, 4.0, 9.0, 9.0, 0.0, 5.0, 0.0];
        let traits_rows = rows(&[(1.0, 0.0), (0.5, 0.0)]);
        for (profile, block, normalise) in [
            (Profile::Photos, Some((0, 5)), true),
            (Profile::Photos, Some((0, 5)), false),
            (Profile::Photos, Some((2, 3)), true),
            (Profile::Crystals, Some((0, 5)), true),
        ] {
            let fusion = profile.fusion();
            assert_eq!(
                embedding_of(&fusion, block, data.clone(), 5, &traits_rows, normalise),
                embedding(&fusion, block, &data, 5, &traits_rows, normalise),
                "{profile:?} {block:?} {normalise}"
            );
        }
    }
}
