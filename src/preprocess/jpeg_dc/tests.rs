//! Tests of the DC-only decoder: against a general decoder at 1/8 scale, restart markers, and what it leaves to the general decoder.

use super::*;
use image::ImageEncoder;

fn jpeg(w: u32, h: u32, gray: bool) -> Vec<u8> {
    let mut state = 1u32;
    let img = RgbImage::from_fn(w, h, |x, y| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let grain = (state >> 28) as f32;
        let v = |f: f32| (120.0 + 90.0 * f.sin() + grain).clamp(0.0, 255.0) as u8;
        image::Rgb([
            v(x as f32 * 0.05),
            v(y as f32 * 0.07),
            v((x + y) as f32 * 0.03),
        ])
    });
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    if gray {
        let luma = image::DynamicImage::ImageRgb8(img).into_luma8();
        encoder
            .write_image(luma.as_raw(), w, h, image::ExtendedColorType::L8)
            .unwrap();
    } else {
        encoder
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    bytes
}

/// Against jpeg-decoder's own 1/8-scale decode of the same file.
fn check(bytes: &[u8]) {
    let ours = decode_eighth(bytes).expect("a baseline JPEG decodes");
    let mut reference = jpeg_decoder::Decoder::new(bytes);
    let (w, h) = reference.scale(1, 1).unwrap();
    let pixels = reference.decode().unwrap();
    assert_eq!(ours.dimensions(), (w as u32, h as u32));
    let channels = pixels.len() / (w as usize * h as usize);
    let mut total = 0u64;
    let mut worst = 0u8;
    for (i, px) in ours.pixels().enumerate() {
        for c in 0..3 {
            let want = pixels[i * channels + c.min(channels - 1)];
            let d = px.0[c].abs_diff(want);
            total += d as u64;
            worst = worst.max(d);
        }
    }
    let mean = total as f64 / (3 * ours.pixels().len()) as f64;
    // Chroma is taken from the nearest block where jpeg-decoder interpolates, so edges
    // differ a little; the block means themselves agree.
    eprintln!("mean {mean:.3} worst {worst}");
    assert!(mean < 1.5 && worst < 40, "mean {mean:.2}, worst {worst}");
}

#[test]
fn matches_a_general_decoder_at_one_eighth_scale() {
    check(&jpeg(333, 250, false)); // sizes not a multiple of the MCU
    check(&jpeg(64, 48, true));
}

#[test]
fn restart_markers_are_followed() {
    let fixture = include_bytes!("../../../tests/fixtures/formats/restart_intervals.jpg");
    assert!(fixture.windows(2).any(|w| w == [0xFF, 0xDD]), "has a DRI");
    check(fixture);
    // The interval splitter itself: stuffing removed, RST boundaries found.
    let data = [1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3, 0xFF, 0xD9];
    let (first, next) = next_interval(&data);
    assert_eq!((first.as_slice(), next), (&[1u8, 0xFF, 2][..], Some(6)));
    let (second, next) = next_interval(&data[6..]);
    assert_eq!((second.as_slice(), next), (&[3u8][..], None));
}

#[test]
fn anything_unusual_is_left_to_the_general_decoder() {
    let good = jpeg(40, 40, false);
    assert!(decode_eighth(&good).is_some());
    // Truncated anywhere: no panic, and either a refusal or an image.
    for cut in (0..good.len()).step_by(7) {
        let _ = decode_eighth(&good[..cut]);
    }
    // Progressive frame marker: refused.
    let mut progressive = good.clone();
    let sof = progressive
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .unwrap();
    progressive[sof + 1] = 0xC2;
    assert!(decode_eighth(&progressive).is_none());
    assert!(decode_eighth(b"not a jpeg").is_none());
    // The committed format fixtures: baseline colour and gray decode, the rest refuse.
    check(include_bytes!(
        "../../../tests/fixtures/formats/baseline.jpg"
    ));
    check(include_bytes!("../../../tests/fixtures/formats/gray.jpg"));
    for refused in [
        &include_bytes!("../../../tests/fixtures/formats/progressive.jpg")[..],
        &include_bytes!("../../../tests/fixtures/formats/cmyk.jpg")[..],
    ] {
        assert!(decode_eighth(refused).is_none());
    }
}

#[test]
fn missing_data_counts_the_blocks_present() {
    let whole = jpeg(320, 240, false);
    assert_eq!(missing_data(&whole), None, "a whole file misses nothing");
    // Cut inside the scan: the fraction of MCUs read grows with the cut, stays below 1.
    let sos = whole.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mut last = -1.0;
    for percent in [1, 25, 50, 75, 99] {
        let cut = sos + (whole.len() - sos) * percent / 100;
        let Some(Missing::Fraction(present)) = missing_data(&whole[..cut]) else {
            panic!("cut at {percent} % not seen as truncated");
        };
        assert!(present > last && present < 1.0, "{percent} %: {present}");
        // Noise-like data spreads evenly over the blocks: the count tracks the bytes.
        let bytes = percent as f64 / 100.0;
        assert!((present - bytes).abs() < 0.1, "{percent} %: {present}");
        last = present;
    }
    // Only the end marker missing: every block is present, so nothing is missing.
    assert_eq!(missing_data(&whole[..whole.len() - 2]), None);
    // The restart-interval fixture, cut: still counted across the RST markers.
    let fixture = include_bytes!("../../../tests/fixtures/formats/restart_intervals.jpg");
    let sos = fixture.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let cut = sos + (fixture.len() - sos) / 2;
    assert!(matches!(
        missing_data(&fixture[..cut]),
        Some(Missing::Fraction(f)) if f > 0.2 && f < 0.8
    ));
    // Progressive, cut: the blocks cannot be counted, but the missing end is seen.
    let progressive = include_bytes!("../../../tests/fixtures/formats/progressive.jpg");
    assert_eq!(missing_data(progressive), None);
    assert_eq!(
        missing_data(&progressive[..progressive.len() / 2]),
        Some(Missing::Unknown)
    );
    assert_eq!(missing_data(b"not a jpeg"), None);
}
