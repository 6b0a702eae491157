//! The explanation regions of a folder, remembered beside its feature cache (a
//! `.regions.json` file): finding one runs the model again on two images, which costs as
//! much as extracting them, so a second `rank --top 0 --format json` should not pay it
//! again. A region depends on the two contents (the image and its closest match) and on how
//! regions are found (`explain::VERSION`, stored with them); the model is the feature
//! cache's, whose file name this one shares.

use super::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The regions file that belongs to the feature cache file `features`.
pub fn file_beside(features: &Path) -> PathBuf {
    features.with_extension("regions.json")
}

/// Regions by "image hash:closest match hash".
pub type Regions = HashMap<String, [u32; 4]>;

#[derive(Serialize, Deserialize)]
struct RegionsFile {
    version: u32,
    regions: Regions,
}

/// The key of the region of the image with content `hash` against `closest`'s.
pub fn key(hash: &str, closest: &str) -> String {
    format!("{hash}:{closest}")
}

/// The regions stored in `path` by `version`; none when the file is missing, damaged or
/// from another version (they are then found again).
pub fn load(path: &Path, version: u32) -> Regions {
    let read = std::fs::read(path).ok();
    read.and_then(|bytes| serde_json::from_slice::<RegionsFile>(&bytes).ok())
        .filter(|file| file.version == version)
        .map(|file| file.regions)
        .unwrap_or_default()
}

pub fn save(path: &Path, version: u32, regions: &Regions) -> std::io::Result<()> {
    let file = RegionsFile {
        version,
        regions: regions.clone(),
    };
    write_atomic(path, &serde_json::to_vec(&file).expect("regions serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_round_trip_and_another_version_or_damage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_beside(&dir.path().join("abc.safetensors"));
        assert!(path.to_string_lossy().ends_with("abc.regions.json"));
        let mut regions = Regions::new();
        regions.insert(key("aa", "bb"), [1, 2, 3, 4]);
        save(&path, 1, &regions).unwrap();
        assert_eq!(load(&path, 1), regions);
        assert!(load(&path, 2).is_empty(), "another version");
        std::fs::write(&path, b"{\"version\": 1, \"regions\": {\"x\": [1").unwrap();
        assert!(load(&path, 1).is_empty(), "damaged");
    }
}
