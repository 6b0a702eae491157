//! The DC-only JPEG decoder (`jpeg_dc::decode_eighth`) parses untrusted bytes on its own:
//! it must return an image or `None` for anything, never panic, and when it does return an
//! image, a general decoder reading the same file at 1/8 scale must agree on its size.
//! Seed the corpus with JPEGs (e.g. tests/fixtures/formats/*.jpg).

#![no_main]

use libfuzzer_sys::fuzz_target;
use snowscope::preprocess::jpeg_dc::decode_eighth;

fuzz_target!(|bytes: &[u8]| {
    let Some(image) = decode_eighth(bytes) else {
        return;
    };
    let mut reference = jpeg_decoder::Decoder::new(bytes);
    if reference.scale(1, 1).is_ok() && reference.decode().is_ok() {
        let info = reference.info().expect("decoded");
        assert_eq!(
            image.dimensions(),
            (u32::from(info.width), u32::from(info.height)),
            "size differs from jpeg-decoder's 1/8-scale decode"
        );
    }
});
