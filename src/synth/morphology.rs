//! Crystal habits: which Reiter parameters grow which form, and how the rare
//! forms are assembled from grown crystals.
//!
//! Parameter regions come from the beta-gamma table (alpha = 1) of Reiter
//! (2005) and its auxiliary materials page
//! (webbox.lafayette.edu/~reiterc/mvp/sfn/), checked by growing each region at
//! the radius used here: small gamma (4e-4 .. 2.5e-3) with beta 0.37 .. 0.45
//! gives stellar dendrites (the paper's featured dendrite is beta = 0.4,
//! gamma = 0.001), beta 0.5 .. 0.65 with gamma near 1e-4 gives dense,
//! parallel, fern-like side branches, gamma around 0.01 .. 0.05 fills the
//! space between the arms into sectored plates, and gamma >= 0.1 gives
//! compact hexagonal plates.

use serde::{Deserialize, Serialize};

use super::reiter::{Crystal, ReiterParams};
use crate::rng::Rng;

/// The habit of a synthetic crystal. The first four are common; the rest are
/// rare forms planted as outliers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Morphology {
    /// Six long arms with sparse side branches.
    StellarDendrite,
    /// Six arms with dense, fern-like side branching.
    FernlikeDendrite,
    /// A star-shaped plate whose arms are broad ridged sectors.
    SectoredPlate,
    /// A compact hexagonal plate.
    SimplePlate,
    /// Rare: two dendrites sharing a centre, rotated 30 degrees (12 arms).
    TwelveBranched,
    /// Rare: a dendrite with one arm broken off part way.
    BrokenArm,
    /// Rare: lopsided growth in a vapour gradient across the crystal.
    AsymmetricGrowth,
    /// Rare: two smaller crystals stuck together at an offset.
    Aggregate,
    /// Rare: a triangular plate (alternate facets grow faster).
    Triangular,
    /// Rare: a long thin column/needle-like crystal.
    Column,
}

impl Morphology {
    pub const COMMON: [Morphology; 4] = [
        Morphology::StellarDendrite,
        Morphology::FernlikeDendrite,
        Morphology::SectoredPlate,
        Morphology::SimplePlate,
    ];
    pub const RARE: [Morphology; 6] = [
        Morphology::TwelveBranched,
        Morphology::BrokenArm,
        Morphology::AsymmetricGrowth,
        Morphology::Aggregate,
        Morphology::Triangular,
        Morphology::Column,
    ];

    pub fn is_rare(self) -> bool {
        !Self::COMMON.contains(&self)
    }

    /// The snake_case name used in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Morphology::StellarDendrite => "stellar_dendrite",
            Morphology::FernlikeDendrite => "fernlike_dendrite",
            Morphology::SectoredPlate => "sectored_plate",
            Morphology::SimplePlate => "simple_plate",
            Morphology::TwelveBranched => "twelve_branched",
            Morphology::BrokenArm => "broken_arm",
            Morphology::AsymmetricGrowth => "asymmetric_growth",
            Morphology::Aggregate => "aggregate",
            Morphology::Triangular => "triangular",
            Morphology::Column => "column",
        }
    }
}

/// One grown crystal placed in the picture, relative to the scene centre.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Index into `Specimen::growth`.
    pub crystal: usize,
    /// Rotation relative to the scene (radians).
    pub rotation: f64,
    /// Crystal extent as a fraction of the image size.
    pub radius_frac: f64,
    /// Offset of the crystal centre (fractions of the image size).
    pub offset: (f64, f64),
    /// Elongation along the crystal x axis (1 = none); the y axis shrinks by
    /// its inverse so the area stays comparable.
    pub stretch: f64,
}

/// One arm cut off after growth.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Break {
    /// Which of the six lattice directions (0..6).
    pub arm: usize,
    /// Where along the arm it broke, as a fraction of the crystal extent.
    pub at: f64,
}

/// Everything needed to grow and lay out one picture, before the camera look.
#[derive(Debug, Clone, Serialize)]
pub struct Specimen {
    pub morphology: Morphology,
    pub growth: Vec<ReiterParams>,
    pub layers: Vec<Layer>,
    pub broken: Option<Break>,
}

/// Lattice radius for an image size: about 1.4 output pixels per cell keeps
/// side branches visible while a crystal grows in a fraction of a second.
pub fn lattice_radius(size: u32) -> usize {
    ((size as f64 * 0.3).round() as usize).clamp(24, 240)
}

fn params(rng: &mut Rng, beta: (f64, f64), log_gamma: (f64, f64), radius: usize) -> ReiterParams {
    ReiterParams {
        alpha: 1.0, // Reiter's ordinary value
        beta: rng.range(beta.0, beta.1),
        // gamma spans decades, so it is drawn log-uniformly.
        gamma: 10f64.powf(rng.range(log_gamma.0, log_gamma.1)),
        beta_gradient: 0.0,
        trigonal: 0.0,
        radius,
        max_steps: 40_000,
    }
}

/// Growth parameters of the common habits.
pub fn common_params(m: Morphology, rng: &mut Rng, radius: usize) -> ReiterParams {
    match m {
        Morphology::FernlikeDendrite => params(rng, (0.50, 0.65), (-4.5, -3.6), radius),
        Morphology::SectoredPlate => params(rng, (0.35, 0.50), (-1.9, -1.3), radius),
        Morphology::SimplePlate => params(rng, (0.40, 0.55), (-0.9, -0.6), radius),
        // Stellar dendrite around the paper's featured beta = 0.4, gamma = 0.001.
        _ => params(rng, (0.37, 0.45), (-3.4, -2.6), radius),
    }
}

fn single(m: Morphology, p: ReiterParams, rng: &mut Rng) -> Specimen {
    Specimen {
        morphology: m,
        growth: vec![p],
        layers: vec![Layer {
            crystal: 0,
            rotation: 0.0,
            radius_frac: rng.range(0.36, 0.45),
            offset: (0.0, 0.0),
            stretch: 1.0,
        }],
        broken: None,
    }
}

fn dendrite(rng: &mut Rng, radius: usize) -> ReiterParams {
    let m = if rng.f64() < 0.5 {
        Morphology::StellarDendrite
    } else {
        Morphology::FernlikeDendrite
    };
    common_params(m, rng, radius)
}

/// Draw the growth parameters and layout of one crystal of habit `m`.
pub fn plan(m: Morphology, rng: &mut Rng, size: u32) -> Specimen {
    let radius = lattice_radius(size);
    match m {
        Morphology::StellarDendrite
        | Morphology::FernlikeDendrite
        | Morphology::SectoredPlate
        | Morphology::SimplePlate => single(m, common_params(m, rng, radius), rng),
        Morphology::TwelveBranched => {
            // Twins share a nucleus; the second crystal is usually a little smaller.
            let mut s = single(m, dendrite(rng, radius), rng);
            let mut twin = s.layers[0].clone();
            twin.rotation = std::f64::consts::PI / 6.0;
            twin.radius_frac *= rng.range(0.8, 0.97);
            s.layers.push(twin);
            s
        }
        Morphology::BrokenArm => {
            let p = if rng.f64() < 0.7 {
                dendrite(rng, radius)
            } else {
                common_params(Morphology::SectoredPlate, rng, radius)
            };
            let mut s = single(m, p, rng);
            s.broken = Some(Break {
                arm: rng.below(6),
                at: rng.range(0.2, 0.55),
            });
            s
        }
        Morphology::AsymmetricGrowth => {
            let mut p = dendrite(rng, radius);
            // A vapour gradient across the crystal: one side grows much faster.
            p.beta_gradient = rng.range(0.35, 0.6) * if rng.f64() < 0.5 { -1.0 } else { 1.0 };
            single(m, p, rng)
        }
        Morphology::Aggregate => aggregate(rng, radius),
        Morphology::Triangular => {
            let mut p = common_params(Morphology::SimplePlate, rng, radius);
            p.trigonal = rng.range(0.16, 0.24);
            single(m, p, rng)
        }
        Morphology::Column => {
            let mut s = single(m, common_params(Morphology::SimplePlate, rng, radius), rng);
            let stretch = rng.range(2.2, 3.0);
            s.layers[0].stretch = stretch;
            // Keep the whole length in the frame.
            s.layers[0].radius_frac = rng.range(0.34, 0.42) / stretch;
            s
        }
    }
}

/// Two smaller crystals, overlapping at an offset and a random relative angle.
fn aggregate(rng: &mut Rng, radius: usize) -> Specimen {
    let habits = [
        Morphology::StellarDendrite,
        Morphology::FernlikeDendrite,
        Morphology::SectoredPlate,
    ];
    let growth: Vec<ReiterParams> = (0..2)
        .map(|_| common_params(habits[rng.below(3)], rng, radius))
        .collect();
    let r = [rng.range(0.22, 0.28), rng.range(0.18, 0.26)];
    let dir = rng.range(0.0, std::f64::consts::TAU);
    // Centres about 1.2 radii apart so the arms interlock.
    let d = 0.6 * (r[0] + r[1]);
    let layers = (0..2)
        .map(|k| {
            let sign = if k == 0 { -0.5 } else { 0.5 };
            Layer {
                crystal: k,
                rotation: rng.range(0.0, std::f64::consts::FRAC_PI_3),
                radius_frac: r[k],
                offset: (sign * d * dir.cos(), sign * d * dir.sin()),
                stretch: 1.0,
            }
        })
        .collect();
    Specimen {
        morphology: Morphology::Aggregate,
        growth,
        layers,
        broken: None,
    }
}

/// Cut one arm off beyond `at` times the crystal extent, leaving a stub.
pub fn break_arm(c: &mut Crystal, b: Break) {
    let angle = b.arm as f64 * std::f64::consts::FRAC_PI_3;
    let (ax, ay) = (angle.cos(), angle.sin());
    let cut = b.at * c.extent;
    for i in 0..c.frozen_at.len() {
        let (q, r) = c.coord(i);
        let (x, y) = Crystal::position(q, r);
        let along = x * ax + y * ay;
        let across = (y * ax - x * ay).abs();
        // The arm's 60-degree sector beyond the break point.
        if along > cut && across < along * (std::f64::consts::FRAC_PI_6).tan() + 1.0 {
            c.frozen_at[i] = u32::MAX;
            c.s[i] = 0.0;
        }
    }
}
