//! The images a user marked in the explorer, kept per folder beside its feature cache and
//! keyed by content hash, so a renamed or moved file keeps its mark and a changed one loses
//! it. A list the user made by hand is never thrown away silently: an unreadable file is
//! reported and left in place until the next mark replaces it.

use super::fs::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

/// Marked contents of one folder: hash -> the path it had when marked (for people reading
/// the file; the hash is what counts).
#[derive(Debug, Default)]
pub struct Marks {
    /// `None` when caching is off: marks then last for this run only.
    path: Option<PathBuf>,
    marked: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct MarksFile {
    version: u32,
    folder: String,
    marked: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the marks in {path}: {why}; they are not shown, and the file is replaced at the next mark"
)]
pub struct MarksError {
    pub path: PathBuf,
    pub why: String,
}

impl Marks {
    /// Marks that are never written (`--no-cache`).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The marks file of `root` (canonical path) inside `cache_dir`.
    pub fn file_for(cache_dir: &Path, root: &Path) -> PathBuf {
        let key = format!("marks\n{}", root.to_string_lossy());
        let name = &blake3::hash(key.as_bytes()).to_hex()[..24];
        cache_dir.join(format!("{name}.marks.json"))
    }

    /// The marks of `root`; none when there is no file yet, and the error when it cannot
    /// be read.
    pub fn open(cache_dir: &Path, root: &Path) -> (Self, Option<MarksError>) {
        let path = Self::file_for(cache_dir, root);
        let mut marks = Marks {
            path: Some(path.clone()),
            marked: BTreeMap::new(),
        };
        let read = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<MarksFile>(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (marks, None),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(file) if file.version == VERSION => {
                marks.marked = file.marked;
                (marks, None)
            }
            Ok(file) => {
                let why = format!("version {} (this build reads {VERSION})", file.version);
                (marks, Some(MarksError { path, why }))
            }
            Err(why) => (marks, Some(MarksError { path, why })),
        }
    }

    pub fn contains(&self, hash: &str) -> bool {
        self.marked.contains_key(hash)
    }

    pub fn len(&self) -> usize {
        self.marked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marked.is_empty()
    }

    /// Marks `hash` (shown as `rel`) or unmarks it; returns whether it is now marked.
    pub fn toggle(&mut self, hash: &str, rel: &str) -> bool {
        if self.marked.remove(hash).is_some() {
            return false;
        }
        self.marked.insert(hash.to_string(), rel.to_string());
        true
    }

    /// Writes the marks (atomically); does nothing for marks kept in memory.
    pub fn save(&self, root: &Path) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = MarksFile {
            version: VERSION,
            folder: root.to_string_lossy().into_owned(),
            marked: self.marked.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("marks serialise") + "\n";
        write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_reopen_and_a_bad_file_is_reported_not_lost() {
        let cache = tempfile::tempdir().unwrap();
        let root = Path::new("/data/crystals");
        let (mut marks, problem) = Marks::open(cache.path(), root);
        assert!(problem.is_none() && marks.is_empty());
        assert!(marks.toggle("aa", "a.png"));
        assert!(marks.toggle("bb", "b.png"));
        assert!(!marks.toggle("aa", "a.png"), "a second toggle unmarks");
        marks.save(root).unwrap();
        let (again, _) = Marks::open(cache.path(), root);
        assert!(again.contains("bb") && !again.contains("aa"));
        assert_eq!(again.len(), 1);
        // Another folder has its own marks.
        assert!(
            Marks::open(cache.path(), Path::new("/data/other"))
                .0
                .is_empty()
        );

        let file = Marks::file_for(cache.path(), root);
        std::fs::write(&file, b"{ not json").unwrap();
        let (broken, problem) = Marks::open(cache.path(), root);
        assert!(broken.is_empty());
        assert!(
            problem
                .unwrap()
                .to_string()
                .contains("cannot read the marks")
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"{ not json",
            "left in place"
        );
    }

    #[test]
    fn marks_in_memory_are_never_written() {
        let mut marks = Marks::in_memory();
        marks.toggle("aa", "a.png");
        marks.save(Path::new("/nonexistent")).unwrap();
        assert!(marks.contains("aa"));
    }
}
