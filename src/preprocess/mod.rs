//! Decode an image file (any common format, EXIF orientation applied), resize it to the
//! model's input size and normalise it into a CHW f32 tensor.

pub mod jpeg_dc;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::path::Path;

/// Largest accepted side in pixels. A header that claims more is refused before any
/// pixel buffer is allocated (decompression bombs).
pub const MAX_SIDE: u32 = 20_000;
/// Largest buffer one decode may allocate (bytes): 85 megapixels of 8-bit RGB. The model
/// needs 224 x 224, and large JPEGs are decoded at a reduced DCT scale well under this, so
/// it only refuses huge PNG/TIFF/WebP files; with one decode per thread it bounds peak
/// memory whatever a header claims.
pub const MAX_ALLOC: u64 = 256 << 20;

/// How pixels become model input: square resize, then per-channel `(x/255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// Identifies the preprocessing in cache keys.
    pub fn id(&self) -> String {
        format!(
            "square{}-bilinear-mean{:?}-std{:?}",
            self.size, self.mean, self.std
        )
    }

    /// Number of f32 values one image occupies (3 x size x size).
    pub fn len(&self) -> usize {
        3 * (self.size as usize) * (self.size as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

/// Why an image could not be used; shown to the user as the skip reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a recognised image format")]
    UnknownFormat,
    #[error("image is {width}x{height} pixels, above the {MAX_SIDE} px limit")]
    TooLarge { width: u32, height: u32 },
    #[error("image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The image data ends early: the rest would be invented grey, so it is not ranked.
    #[error("truncated: {}", match .present {
        Some(fraction) => format!("{} % of the image data present", percent(*fraction)),
        None => "the data ends before the end-of-image marker".to_string(),
    })]
    Truncated { present: Option<f64> },
}

/// A fraction as a percentage with two significant digits, never rounded up to 100.
fn percent(fraction: f64) -> String {
    let p = (fraction * 100.0).clamp(0.0, 100.0);
    match p {
        p if p >= 10.0 => format!("{}", (p.floor() as u32).min(99)),
        p if p >= 1.0 => format!("{:.1}", (p * 10.0).floor() / 10.0),
        p => format!("{:.2}", (p * 100.0).floor() / 100.0),
    }
}

impl From<DecodeError> for crate::scan::SkipReason {
    fn from(e: DecodeError) -> Self {
        crate::scan::SkipReason::Decode(std::sync::Arc::new(e))
    }
}

fn decode_error(e: image::ImageError) -> DecodeError {
    match e {
        // Decoders report a short file as an I/O error; it is the content that is broken.
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Decode("truncated file (the data ends too early)".into())
        }
        image::ImageError::IoError(io) => DecodeError::Io(io),
        image::ImageError::Limits(l) => DecodeError::Decode(format!("over a safety limit ({l})")),
        image::ImageError::Unsupported(u) => DecodeError::Decode(format!("unsupported: {u}")),
        other => DecodeError::Decode(other.to_string().trim_end().to_string()),
    }
}

/// Decodes `path` into 8-bit RGB with EXIF orientation applied. Grayscale, 16-bit and
/// palette images are converted; alpha is composited over black. Animated formats give
/// their first frame.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    load_rgb_at_least(path, None)
}

/// `load_rgb`, allowed to return a smaller image as long as both sides stay at least
/// `min_side`: large JPEGs are then decoded at 1/2, 1/4 or 1/8 scale in the DCT domain,
/// which skips most of the decoding work of camera-sized photos.
pub fn load_rgb_at_least(path: &Path, min_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    load_rgb_reduced(path, min_side).map(|(image, _)| image)
}

/// `load_rgb_at_least`, with how many original pixels one decoded pixel spans (1, or the
/// DCT scale's denominator), so that sizes measured on it are in original pixels.
fn load_rgb_reduced(path: &Path, min_side: Option<u32>) -> Result<(RgbImage, f32), DecodeError> {
    let bytes = crate::scan::read_regular(path)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    // The content decides the format, not the extension (a text file may be called .jpg).
    let mut reader = ImageReader::new(std::io::Cursor::new(&bytes[..])).with_guessed_format()?;
    let format = reader.format();
    if format.is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    // Before any decoder sizes a buffer by what the header claims.
    if format == Some(ImageFormat::Jpeg)
        && let Some(missing) = jpeg_dc::missing_data(&bytes)
    {
        let present = match missing {
            jpeg_dc::Missing::Fraction(f) => Some(f),
            jpeg_dc::Missing::Unknown => None,
        };
        return Err(DecodeError::Truncated { present });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DecodeError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    let orientation = decoder.orientation().map_err(decode_error)?;
    let reduced = match (format, min_side) {
        (Some(ImageFormat::Jpeg), Some(min)) => reduced_jpeg(&bytes, width, height, min),
        _ => None,
    };
    let mut image = match reduced {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => {
            to_rgb_over_black(DynamicImage::from_decoder(decoder).map_err(decode_error)?).into()
        }
    };
    let scale = width as f32 / image.width().max(1) as f32;
    image.apply_orientation(orientation);
    Ok((image.into_rgb8(), scale))
}

/// Decodes a JPEG at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps both sides at
/// least `min_side`. `None` when no reduction applies or the file needs the full decoder
/// (CMYK, 16-bit, or anything jpeg-decoder refuses): the caller then decodes normally,
/// within `MAX_ALLOC`.
fn reduced_jpeg(bytes: &[u8], width: u32, height: u32, min_side: u32) -> Option<RgbImage> {
    let denominator = [8, 4, 2]
        .into_iter()
        .find(|d| width / d >= min_side && height / d >= min_side)?;
    if denominator == 8
        && let Some(image) = jpeg_dc::decode_eighth(bytes)
    {
        return Some(image);
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    // Progressive files keep every coefficient of the full image while they decode.
    decoder.set_max_decoding_buffer_size(MAX_ALLOC as usize);
    let request = |side: u32| u16::try_from(side.div_ceil(denominator)).ok();
    let (w, h) = decoder.scale(request(width)?, request(height)?).ok()?;
    let pixels = decoder.decode().ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(w, h, pixels),
        jpeg_decoder::PixelFormat::L8 => {
            RgbImage::from_raw(w, h, pixels.iter().flat_map(|&v| [v, v, v]).collect())
        }
        _ => None,
    }
}

fn to_rgb_over_black(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((c as u16 * a as u16 + 127) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

/// Bilinear (antialiased, like PIL's) resize to `size` x `size`, ignoring the aspect ratio
/// as the tutorial's `load_img(target_size=...)` did.
pub fn resize_square(image: &RgbImage, size: u32) -> RgbImage {
    if image.width() == size && image.height() == size {
        return image.clone();
    }
    crate::resize::triangle(image, size, size)
}

/// Writes the normalised CHW tensor of a `size` x `size` image into `out`.
pub fn normalise_into(image: &RgbImage, pp: &Preprocess, out: &mut [f32]) {
    let plane = (image.width() * image.height()) as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "output buffer does not match the image"
    );
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * pp.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| pp.mean[c] / pp.std[c]);
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px.0[c] as f32 * scale[c] - shift[c];
        }
    }
}

/// Decode, resize and normalise one file: the model input for one image.
pub fn prepare(path: &Path, pp: &Preprocess) -> Result<Vec<f32>, DecodeError> {
    let image = load_rgb_at_least(path, Some(pp.size))?;
    Ok(model_input(&image, pp))
}

/// `prepare`, plus the morphology of the decoded image (one decode for both).
pub fn prepare_with_traits(
    path: &Path,
    pp: &Preprocess,
) -> Result<(Vec<f32>, crate::traits::Traits), DecodeError> {
    let (image, scale) = load_rgb_reduced(path, Some(pp.size))?;
    Ok((
        model_input(&image, pp),
        crate::traits::measure(&image, scale),
    ))
}

/// `prepare`, plus the original image's width and height (after its EXIF orientation), so
/// that places in the model's square input can be mapped back to the file's pixels.
pub fn prepare_with_size(
    path: &Path,
    pp: &Preprocess,
) -> Result<(Vec<f32>, (u32, u32)), DecodeError> {
    let (image, scale) = load_rgb_reduced(path, Some(pp.size))?;
    let original = |side: u32| (side as f32 * scale).round() as u32;
    let size = (original(image.width()), original(image.height()));
    Ok((model_input(&image, pp), size))
}

fn model_input(image: &RgbImage, pp: &Preprocess) -> Vec<f32> {
    let image = resize_square(image, pp.size);
    let mut out = vec![0.0; pp.len()];
    normalise_into(&image, pp, &mut out);
    out
}

/// `img` as a JPEG whose EXIF says Orientation = 6 ("rotate 90 CW"): for tests of the
/// orientation handling.
#[doc(hidden)]
pub fn exif_rotated_jpeg(img: &RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    // TIFF-structured EXIF with one entry: Orientation (0x0112) = 6.
    let exif = [
        b'I', b'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    encoder
        .set_exif_metadata(exif.to_vec())
        .expect("JPEG takes EXIF");
    encoder
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("in-memory JPEG encoding");
    bytes
}

/// CRC-32 (IEEE), the checksum of PNG chunks: for tests and fuzzers that build PNG headers
/// by hand (the decoders check their own).
#[doc(hidden)]
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const PP: Preprocess = Preprocess {
        size: 8,
        mean: [0.5, 0.5, 0.5],
        std: [0.5, 0.5, 0.5],
    };

    #[test]
    fn normalisation_maps_0_255_to_minus1_plus1() {
        let img = RgbImage::from_fn(8, 8, |x, _| {
            if x < 4 {
                image::Rgb([0; 3])
            } else {
                image::Rgb([255; 3])
            }
        });
        let mut out = vec![0.0; PP.len()];
        normalise_into(&img, &PP, &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6);
        assert!((out[7] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn bad_files_give_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(prepare(&empty, &PP), Err(DecodeError::Empty)));
        let text = dir.path().join("text.jpg");
        std::fs::write(&text, b"hello, not an image").unwrap();
        assert!(matches!(
            prepare(&text, &PP),
            Err(DecodeError::UnknownFormat)
        ));
        let missing = dir.path().join("missing.png");
        assert!(matches!(prepare(&missing, &PP), Err(DecodeError::Io(_))));
    }

    #[test]
    fn truncated_png_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        RgbImage::from_pixel(64, 64, image::Rgb([9, 99, 199]))
            .save(&path)
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = prepare(&path, &PP).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn grayscale_alpha_and_16_bit_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let gray = dir.path().join("g.png");
        image::GrayAlphaImage::from_pixel(5, 3, image::LumaA([200, 255]))
            .save(&gray)
            .unwrap();
        let deep = dir.path().join("d.png");
        image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(4, 4, image::Rgb([65535u16, 0, 0]))
            .save(&deep)
            .unwrap();
        assert_eq!(load_rgb(&gray).unwrap().get_pixel(0, 0).0, [200, 200, 200]);
        assert_eq!(load_rgb(&deep).unwrap().get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(prepare(&gray, &PP).unwrap().len(), PP.len());
    }

    #[test]
    fn exif_orientation_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotated.jpg");
        let img = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let bytes = exif_rotated_jpeg(&img);
        std::fs::write(&path, bytes).unwrap();
        let decoded = load_rgb(&path).unwrap();
        assert_eq!(decoded.dimensions(), (20, 40), "rotated to portrait");
        // Red (the left half) ends up on top after a clockwise quarter turn.
        assert!(decoded.get_pixel(10, 5).0[0] > 200 && decoded.get_pixel(10, 35).0[2] > 200);
    }

    #[test]
    fn decompression_bombs_are_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        // A valid PNG header claiming 100000 x 100000 RGB pixels (30 GB), and no pixel data.
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &png).unwrap();
        let started = std::time::Instant::now();
        let err = prepare(&path, &PP).unwrap_err();
        assert!(started.elapsed().as_secs() < 2, "refused quickly");
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn animated_gif_gives_its_first_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anim.gif");
        let frames = [image::Rgba([250, 0, 0, 255]), image::Rgba([0, 0, 250, 255])]
            .map(|c| image::Frame::new(image::RgbaImage::from_pixel(8, 8, c)));
        let mut encoder =
            image::codecs::gif::GifEncoder::new(std::fs::File::create(&path).unwrap());
        encoder.encode_frames(frames).unwrap();
        drop(encoder);
        let decoded = load_rgb(&path).unwrap();
        assert!(decoded.get_pixel(4, 4).0[0] > 200, "first (red) frame");
    }

    #[test]
    fn large_jpegs_decode_at_reduced_scale_with_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("camera.jpg");
        let img = RgbImage::from_fn(1800, 1200, |x, y| {
            let ring =
                (((x as f32 - 900.0).hypot(y as f32 - 600.0) / 40.0).sin() * 100.0 + 120.0) as u8;
            image::Rgb([ring, (x / 8) as u8, (y / 6) as u8])
        });
        img.save(&path).unwrap();
        let reduced = load_rgb_at_least(&path, Some(224)).unwrap();
        assert_eq!(reduced.dimensions(), (450, 300), "decoded at 1/4 scale");
        let full = load_rgb(&path).unwrap();
        assert_eq!(full.dimensions(), (1800, 1200));
        // Same picture at model size: mean absolute difference of a few levels at most.
        let (a, b) = (resize_square(&reduced, 224), resize_square(&full, 224));
        let diff: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>();
        let mean = diff / a.as_raw().len() as f64;
        assert!(mean < 2.0, "mean difference {mean}");
        // Small images are not reduced below the model size.
        let small = dir.path().join("small.jpg");
        RgbImage::from_pixel(300, 500, image::Rgb([1, 2, 3]))
            .save(&small)
            .unwrap();
        assert_eq!(
            load_rgb_at_least(&small, Some(224)).unwrap().dimensions(),
            (300, 500)
        );
    }
}
