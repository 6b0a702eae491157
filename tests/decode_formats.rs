//! Every committed format/colour-model fixture decodes to the same scene: red on the left,
//! blue on the right (grayscale ones: bright left, dark right).
//! Fixtures: tests/fixtures/make_format_fixtures.py (Pillow, dev-time only).

use snowscope::preprocess::load_rgb;
use std::path::Path;

fn decode(name: &str) -> image::RgbImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    load_rgb(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn colour_formats_decode_to_the_scene() {
    for name in [
        "baseline.jpg",
        "progressive.jpg",
        "cmyk.jpg",
        "palette.png",
        "lossless.webp",
        "image.bmp",
        "image.tiff",
        "image.gif",
    ] {
        let img = decode(name);
        assert_eq!(img.dimensions(), (64, 48), "{name}");
        let (left, right) = (img.get_pixel(8, 24).0, img.get_pixel(56, 24).0);
        assert!(
            left[0] > 180 && left[2] < 80,
            "{name}: left is {left:?}, want red"
        );
        assert!(
            right[2] > 180 && right[0] < 80,
            "{name}: right is {right:?}, want blue"
        );
    }
}

#[test]
fn grayscale_formats_decode_to_gray() {
    for name in ["gray.jpg", "gray_alpha.png", "gray16.png"] {
        let img = decode(name);
        assert_eq!(img.dimensions(), (64, 48), "{name}");
        let (left, right) = (img.get_pixel(8, 24).0, img.get_pixel(56, 24).0);
        assert!(left[0] == left[1] && left[1] == left[2], "{name}: gray");
        assert!(
            left[0] > right[0] + 30,
            "{name}: left {left:?} brighter than right {right:?}"
        );
    }
}
