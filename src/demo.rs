//! The bundled snowflakes, wherever snowscope runs from: `data/snowflakes` beside the
//! sources when the binary runs from a checkout (or from the working folder), else the same
//! set grown into the cache folder on first use. The generator is deterministic, so the
//! grown set is byte-identical to the committed one (a test checks it).

use crate::synth::{self, SynthConfig, SynthError};
use std::path::{Path, PathBuf};

/// The bundled set's place inside a checkout.
const IN_CHECKOUT: &str = "data/snowflakes";

/// Where the bundled set already is: `data/snowflakes` of the checkout the running binary
/// was built in (`target/<profile>/snowscope` lies two or three folders below it), of the
/// working folder, or grown earlier into `cache_dir`.
pub fn find(cache_dir: &Path) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let beside_binary = exe.ancestors().skip(1).take(4).map(|d| d.join(IN_CHECKOUT));
    let in_working_folder = std::env::current_dir().ok().map(|d| d.join(IN_CHECKOUT));
    beside_binary
        .chain(in_working_folder)
        .chain([grown_dir(cache_dir)])
        .find(|dir| is_complete(dir))
}

/// The folder the grown set lives in, inside `cache_dir`. The version is part of the name:
/// another release may grow other crystals.
pub fn grown_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(format!("snowflakes-{}", env!("CARGO_PKG_VERSION")))
}

/// Grows the bundled set into `grown_dir(cache_dir)`, reporting `(done, total)` images.
pub fn grow(
    cache_dir: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PathBuf, SynthError> {
    let dir = grown_dir(cache_dir);
    // Grown beside its final place and renamed when whole: an interrupted run leaves no
    // half set that a later run would take for the real one.
    let partial = cache_dir.join(format!(
        ".snowflakes-{}.partial-{}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let cfg = SynthConfig {
        out: partial.clone(),
        ..SynthConfig::default()
    };
    synth::generate(&cfg, progress)?;
    match std::fs::rename(&partial, &dir) {
        Ok(()) => Ok(dir),
        // Another run grew it at the same time: theirs is as good as ours.
        Err(_) if is_complete(&dir) => {
            let _ = std::fs::remove_dir_all(&partial);
            Ok(dir)
        }
        Err(source) => Err(SynthError::Io { path: dir, source }),
    }
}

/// A set is whole when its manifest is there and every image it lists.
fn is_complete(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return false;
    };
    let Ok(manifest) = serde_json::from_str::<synth::Manifest>(&text) else {
        return false;
    };
    !manifest.images.is_empty() && manifest.images.iter().all(|i| dir.join(&i.file).is_file())
}
