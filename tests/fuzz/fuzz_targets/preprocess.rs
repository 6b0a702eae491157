//! The image preprocessing entry point (`preprocess::prepare`: sniff the format, check the
//! header against the size limits, decode, EXIF-rotate, resize, normalise) must turn any
//! file into model input or an error: never a panic, an abort or an allocation beyond the
//! limits. The bytes go through a real file because `prepare` takes a path, as the
//! pipeline calls it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snowscope::preprocess::{Preprocess, prepare};
use std::cell::RefCell;
use std::path::PathBuf;

/// A small input size: JPEGs of 64 px and more take the reduced-scale (DCT) path.
const PP: Preprocess = Preprocess {
    size: 32,
    mean: [0.5; 3],
    std: [0.5; 3],
};

thread_local! {
    static FILE: RefCell<Option<(tempfile::TempDir, PathBuf)>> = const { RefCell::new(None) };
}

fuzz_target!(|bytes: &[u8]| {
    FILE.with(|file| {
        let mut file = file.borrow_mut();
        let (_, path) = file.get_or_insert_with(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("input.img");
            (dir, path)
        });
        std::fs::write(&*path, bytes).unwrap();
        if let Ok(input) = prepare(path, &PP) {
            assert_eq!(input.len(), PP.len());
            assert!(input.iter().all(|v| v.is_finite() && v.abs() <= 1.01));
        }
    });
});
