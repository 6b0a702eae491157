//! Ranking quality against known outliers: AUROC, average precision, precision@k.
//! Used to choose defaults (README table) and to guard quality in tests.

use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Why a truth file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{} is not valid JSON: {cause}", path.display())]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("{}: expected {{\"images\": [{{\"file\", \"rare\"}}, ...]}}", .0.display())]
    Shape(PathBuf),
}

/// Which images are the known outliers, read from a synth `manifest.json` (entries with
/// `"rare": true`) or a text file with one path per line (`#` starts a comment).
pub fn read_truth(path: &Path) -> Result<HashSet<String>, TruthError> {
    let text = std::fs::read_to_string(path).map_err(|cause| TruthError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|cause| TruthError::Json {
                path: path.to_path_buf(),
                cause,
            })?;
        let images = value["images"]
            .as_array()
            .ok_or_else(|| TruthError::Shape(path.to_path_buf()))?;
        Ok(images
            .iter()
            .filter(|i| i["rare"].as_bool() == Some(true))
            .filter_map(|i| i["file"].as_str().map(str::to_string))
            .collect())
    } else {
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect())
    }
}

/// Does a ranked path name one of the truth entries (full relative path or file name)?
pub fn is_listed(truth: &HashSet<String>, rel: &str) -> bool {
    truth.contains(rel)
        || rel
            .rsplit('/')
            .next()
            .is_some_and(|name| truth.contains(name))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub auroc: f64,
    pub average_precision: f64,
    /// Precision among the top `k` where `k` = number of positives (R-precision).
    pub precision_at_k: f64,
    pub k: usize,
    pub positives: usize,
    pub total: usize,
}

/// Quality of a ranking given as `is_positive` flags in ranked order (most unique first).
/// `None` when there are no positives or no negatives.
pub fn quality(ranked_positive: &[bool]) -> Option<Quality> {
    let total = ranked_positive.len();
    let positives = ranked_positive.iter().filter(|&&p| p).count();
    let negatives = total - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // AUROC: fraction of (positive, negative) pairs with the positive ranked higher.
    let mut negatives_below = negatives;
    let mut correct_pairs = 0usize;
    let mut hits = 0usize;
    let mut precision_sum = 0.0;
    for (i, &p) in ranked_positive.iter().enumerate() {
        if p {
            correct_pairs += negatives_below;
            hits += 1;
            precision_sum += hits as f64 / (i + 1) as f64;
        } else {
            negatives_below -= 1;
        }
    }
    let k = positives;
    Some(Quality {
        auroc: correct_pairs as f64 / (positives * negatives) as f64,
        average_precision: precision_sum / positives as f64,
        precision_at_k: ranked_positive[..k].iter().filter(|&&p| p).count() as f64 / k as f64,
        k,
        positives,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let perfect = quality(&[true, true, false, false, false]).unwrap();
        assert_eq!(
            (
                perfect.auroc,
                perfect.average_precision,
                perfect.precision_at_k
            ),
            (1.0, 1.0, 1.0)
        );
        // Positives at ranks 2 and 4 of 5: pairs won 2 + 1 of 6; AP = (1/2 + 2/4) / 2.
        let q = quality(&[false, true, false, true, false]).unwrap();
        assert!((q.auroc - 0.5).abs() < 1e-12);
        assert!((q.average_precision - 0.5).abs() < 1e-12);
        assert_eq!(q.precision_at_k, 0.5);
        assert!(quality(&[true, true]).is_none());
        assert!(quality(&[]).is_none());
    }

    #[test]
    fn truth_from_list_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("truth.txt");
        std::fs::write(&list, "# rare ones\na.png\n\nsub/b.png\n").unwrap();
        let truth = read_truth(&list).unwrap();
        assert!(
            is_listed(&truth, "x/a.png")
                && is_listed(&truth, "sub/b.png")
                && !is_listed(&truth, "b.png")
        );
        let manifest = dir.path().join("manifest.json");
        std::fs::write(
            &manifest,
            r#"{"images":[{"file":"s1.png","rare":true},{"file":"s2.png","rare":false}]}"#,
        )
        .unwrap();
        let truth = read_truth(&manifest).unwrap();
        assert_eq!(truth.len(), 1);
        assert!(truth.contains("s1.png"));
    }
}
