//! Quality averaged over planted-outlier draws, shared by the quality benches (each uses
//! part of it).
#![allow(dead_code)]

use snowscope::eval::quality;

/// Sums of AUROC, average precision and R-precision over `n` rankings.
#[derive(Default, Clone, Copy)]
pub struct Mean {
    auroc: f64,
    ap: f64,
    pk: f64,
    n: usize,
}

impl Mean {
    /// Adds one ranking, given as positive flags in ranked order (skipped without both).
    pub fn add(&mut self, flags: &[bool]) {
        if let Some(q) = quality(flags) {
            self.auroc += q.auroc;
            self.ap += q.average_precision;
            self.pk += q.precision_at_k;
            self.n += 1;
        }
    }

    /// Adds another mean as one item (so that classes weigh alike, whatever their draws).
    pub fn add_mean(&mut self, other: Mean) {
        if other.n > 0 {
            let n = other.n as f64;
            self.auroc += other.auroc / n;
            self.ap += other.ap / n;
            self.pk += other.pk / n;
            self.n += 1;
        }
    }

    pub fn auroc(&self) -> Option<f64> {
        (self.n > 0).then(|| self.auroc / self.n as f64)
    }

    /// The means, formatted `AUROC | AP | P@k` (or dashes when empty).
    pub fn cells(&self) -> String {
        self.formatted(" | ", true)
    }

    /// `AUROC / AP`, for tables with one cell per set.
    pub fn cell(&self) -> String {
        self.formatted(" / ", false)
    }

    fn formatted(&self, sep: &str, with_pk: bool) -> String {
        if self.n == 0 {
            return if with_pk {
                "- | - | -".into()
            } else {
                "-".into()
            };
        }
        let n = self.n as f64;
        let mut out = format!("{:.3}{sep}{:.3}", self.auroc / n, self.ap / n);
        if with_pk {
            out += &format!("{sep}{:.3}", self.pk / n);
        }
        out
    }
}
