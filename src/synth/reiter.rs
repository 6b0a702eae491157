//! Reiter's local cellular model of snow crystal growth.
//!
//! C. A. Reiter, "A local cellular model for snow crystal growth",
//! Chaos, Solitons & Fractals 23 (2005) 1111-1119.
//!
//! Every cell of a hexagonal lattice holds a water amount `s`; `s >= 1` is ice.
//! A cell is *receptive* when it is ice or touches ice. Each step:
//!
//! * `v = s` on receptive cells (0 elsewhere) and gets the constant `gamma`
//!   added (vapour arriving from outside the plane);
//! * `u = s` on non-receptive cells (0 on receptive ones) diffuses:
//!   `u' = u + alpha/2 * (mean of the 6 neighbours' u - u)`, applied on every
//!   cell, which is how vapour flows into the receptive boundary;
//! * `s' = u' + v'`.
//!
//! The grid starts at the background level `beta` with one ice cell at the
//! centre, and cells beyond the boundary radius are held at `beta`.
//!
//! The state is kept in fixed point: integer sums do not depend on the
//! order in which the six neighbours are added, so a 6-fold symmetric start
//! stays *exactly* 6-fold symmetric (floating-point rounding would break the
//! symmetry after a few thousand steps) and results are identical on every
//! platform.

/// Fractional bits of the fixed-point state: 2^-28 resolves gamma = 1e-4
/// to 0.004 % while `coef * (sum - 6u)` stays far from i64 overflow.
const FRAC_BITS: u32 = 28;
/// Fixed-point 1.0: the freezing threshold.
const ONE: i64 = 1 << FRAC_BITS;

/// Model parameters plus the two extensions used for the rare habits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ReiterParams {
    /// Diffusion weight (Reiter: ordinarily 1).
    pub alpha: f64,
    /// Background vapour level.
    pub beta: f64,
    /// Constant added to receptive cells each step.
    pub gamma: f64,
    /// Vapour gradient: `beta` is scaled by `1 + beta_gradient * x / radius`
    /// across the grid (0 = the paper's uniform background).
    pub beta_gradient: f64,
    /// 3-fold modulation of `beta` and `gamma` by `1 + trigonal * cos(3 theta)`
    /// (0 = the paper's model), which grows triangular crystals.
    pub trigonal: f64,
    /// Boundary radius in cells.
    pub radius: usize,
    /// Growth stops after this many steps even if the crystal is small.
    pub max_steps: u32,
}

/// A grown crystal on an axial-coordinate hexagonal grid.
#[derive(Debug, Clone)]
pub struct Crystal {
    /// Half-width of the square axial array; the centre is at (half, half).
    pub half: usize,
    /// Boundary radius in cells (cells farther from the centre stay vapour).
    pub radius: usize,
    /// Final water amount per cell (>= 1 is ice).
    pub s: Vec<f32>,
    /// Step at which each cell froze, `u32::MAX` if it never did.
    pub frozen_at: Vec<u32>,
    /// Number of steps run.
    pub steps: u32,
    /// Largest distance (cells) from the centre to an ice cell.
    pub extent: f64,
}

/// The six axial neighbour offsets (dq, dr), in counter-clockwise order.
pub const NEIGHBOURS: [(i32, i32); 6] = [(1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1)];

impl Crystal {
    pub fn width(&self) -> usize {
        2 * self.half + 1
    }

    /// Array index of axial coordinate (q, r) relative to the centre, if in range.
    pub fn index(&self, q: i32, r: i32) -> Option<usize> {
        let h = self.half as i32;
        let (a, b) = (q + h, r + h);
        let w = self.width() as i32;
        (a >= 0 && b >= 0 && a < w && b < w).then(|| (b * w + a) as usize)
    }

    /// Axial coordinate (q, r) of an array index.
    pub fn coord(&self, i: usize) -> (i32, i32) {
        let w = self.width();
        (
            (i % w) as i32 - self.half as i32,
            (i / w) as i32 - self.half as i32,
        )
    }

    pub fn is_ice(&self, i: usize) -> bool {
        self.frozen_at[i] != u32::MAX
    }

    /// Cartesian position (in cell spacings) of an axial coordinate.
    pub fn position(q: i32, r: i32) -> (f64, f64) {
        (q as f64 + 0.5 * r as f64, r as f64 * 3f64.sqrt() / 2.0)
    }

    /// Number of ice cells.
    pub fn ice_count(&self) -> usize {
        self.frozen_at.iter().filter(|&&t| t != u32::MAX).count()
    }
}

/// Per-cell constants derived from the parameters.
struct Field {
    width: usize,
    inside: Vec<bool>,
    beta: Vec<i64>,
    gamma: Vec<i64>,
}

fn to_fixed(x: f64) -> i64 {
    (x * ONE as f64).round() as i64
}

fn build_field(p: &ReiterParams, half: usize) -> Field {
    let width = 2 * half + 1;
    let n = width * width;
    let (mut inside, mut beta, mut gamma) = (vec![false; n], vec![0; n], vec![0; n]);
    let r2 = (p.radius * p.radius) as i64;
    for i in 0..n {
        let q = (i % width) as i32 - half as i32;
        let r = (i / width) as i32 - half as i32;
        let (q64, r64) = (q as i64, r as i64);
        // Squared Euclidean distance on the hexagonal lattice.
        inside[i] = q64 * q64 + q64 * r64 + r64 * r64 <= r2;
        let (x, y) = Crystal::position(q, r);
        let tri = 1.0 + p.trigonal * (3.0 * y.atan2(x)).cos();
        let grad = 1.0 + p.beta_gradient * x / p.radius as f64;
        beta[i] = to_fixed((p.beta * tri * grad).max(0.0));
        gamma[i] = to_fixed((p.gamma * tri).max(0.0));
    }
    Field {
        width,
        inside,
        beta,
        gamma,
    }
}

/// Grow a crystal from a single ice seed until it reaches 90 % of the
/// boundary radius or `max_steps` elapse.
pub fn grow(p: &ReiterParams) -> Crystal {
    // The circle of radius R spans up to 2R/sqrt(3) along an axial axis; the
    // extra cells keep every updated cell's neighbours inside the array.
    let half = (p.radius as f64 * 2.0 / 3f64.sqrt()).ceil() as usize + 2;
    let f = build_field(p, half);
    let (w, n) = (f.width, f.width * f.width);
    let spans = row_spans(&f.inside, w);
    let offsets = NEIGHBOURS.map(|(dq, dr)| dq as isize + dr as isize * w as isize);
    // alpha/12 in fixed point, so the update is a multiply and a shift.
    let coef = (p.alpha / 12.0 * ONE as f64).round() as i64;

    let mut s = f.beta.clone();
    // keep[i] = -1 (all bits) on non-receptive cells, 0 on receptive ones:
    // `s & keep` is Reiter's diffusing part u without a branch.
    let mut keep = vec![-1i64; n];
    let mut frozen_at = vec![u32::MAX; n];
    let centre = half * w + half;
    s[centre] = ONE;
    freeze(centre, 0, &offsets, &mut frozen_at, &mut keep);

    let mut next = s.clone();
    let mut u = vec![0i64; n];
    let mut fresh = Vec::new();
    let stop_extent = 0.9 * p.radius as f64;
    let mut extent = 0.0f64;
    let mut step = 0;
    while step < p.max_steps && extent < stop_extent {
        step += 1;
        for (u, (&si, &k)) in u.iter_mut().zip(s.iter().zip(&keep)) {
            *u = si & k;
        }
        for &(row, lo, hi) in &spans {
            update_row(
                &Rows::new(&u, w, row, lo, hi),
                &s,
                &keep,
                &f.gamma,
                coef,
                &mut next,
                row * w,
                lo,
                hi,
            );
            let base = row * w;
            fresh.extend(
                (base + lo..base + hi).filter(|&i| next[i] >= ONE && frozen_at[i] == u32::MAX),
            );
        }
        // Freezing only takes effect for the next step's classification.
        for i in fresh.drain(..) {
            freeze(i, step, &offsets, &mut frozen_at, &mut keep);
            let (q, r) = ((i % w) as i32 - half as i32, (i / w) as i32 - half as i32);
            let (x, y) = Crystal::position(q, r);
            extent = extent.max(x.hypot(y));
        }
        std::mem::swap(&mut s, &mut next);
    }
    Crystal {
        half,
        radius: p.radius,
        s: s.iter().map(|&x| (x as f64 / ONE as f64) as f32).collect(),
        frozen_at,
        steps: step,
        extent,
    }
}

/// The diffusing field u around one row span: the row itself widened by one
/// cell each side, and the rows above and below shifted so that index k
/// lines up with column lo + k of the centre row.
struct Rows<'a> {
    /// u[row][lo-1 .. hi+1]
    mid: &'a [i64],
    /// u[row-1][lo .. hi+1]: neighbours (0,-1) and (1,-1)
    below: &'a [i64],
    /// u[row+1][lo-1 .. hi]: neighbours (-1,1) and (0,1)
    above: &'a [i64],
}

impl<'a> Rows<'a> {
    fn new(u: &'a [i64], w: usize, row: usize, lo: usize, hi: usize) -> Self {
        Self {
            mid: &u[row * w + lo - 1..row * w + hi + 1],
            below: &u[(row - 1) * w + lo..(row - 1) * w + hi + 1],
            above: &u[(row + 1) * w + lo - 1..(row + 1) * w + hi],
        }
    }
}

/// One step of Reiter's update for the cells [lo, hi) of one row, written
/// over zipped slices so the compiler can drop bounds checks and vectorise.
#[allow(clippy::too_many_arguments)]
fn update_row(
    rows: &Rows,
    s: &[i64],
    keep: &[i64],
    gamma: &[i64],
    coef: i64,
    next: &mut [i64],
    base: usize,
    lo: usize,
    hi: usize,
) {
    let len = hi - lo;
    let (s, keep, gamma) = (
        &s[base + lo..base + hi],
        &keep[base + lo..base + hi],
        &gamma[base + lo..base + hi],
    );
    let out = &mut next[base + lo..base + hi];
    for k in 0..len {
        let centre = rows.mid[k + 1];
        let sum = rows.mid[k]
            + rows.mid[k + 2]
            + rows.below[k]
            + rows.below[k + 1]
            + rows.above[k]
            + rows.above[k + 1];
        let diffused = centre + ((coef * (sum - 6 * centre)) >> FRAC_BITS);
        // Receptive cells (keep == 0) keep their water and gain gamma.
        out[k] = (!keep[k] & (s[k] + gamma[k])) + diffused;
    }
}

/// Ice never melts in this model (receptive cells only gain), so the
/// receptive set can be grown incrementally: the new ice cell and its six
/// neighbours become receptive for good.
fn freeze(i: usize, step: u32, offsets: &[isize; 6], frozen_at: &mut [u32], keep: &mut [i64]) {
    frozen_at[i] = step;
    keep[i] = 0;
    for &o in offsets {
        keep[(i as isize + o) as usize] = 0;
    }
}

/// For every array row, the contiguous column range [lo, hi) inside the
/// boundary circle, so the hot loop needs no per-cell inside test.
fn row_spans(inside: &[bool], w: usize) -> Vec<(usize, usize, usize)> {
    (0..w)
        .filter_map(|row| {
            let cells = &inside[row * w..(row + 1) * w];
            let lo = cells.iter().position(|&b| b)?;
            let hi = cells.iter().rposition(|&b| b)? + 1;
            Some((row, lo, hi))
        })
        .collect()
}
