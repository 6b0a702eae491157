//! CPU kernels for EfficientNet-Lite on channels-last (HWC) maps, one image at a time.
//!
//! candle runs a grouped convolution as one convolution per group, which makes the
//! depthwise convolutions of EfficientNet (groups = channels) about 100x slower per FLOP
//! than its dense path (ARCHITECTURE.md, "model"), and its NCHW matrix products leave
//! the small late maps (14x14, 7x7) with short rows. Channels-last turns every 1x1
//! convolution into one `pixels x channels` product ([`gemm`]) and every depthwise tap
//! into a multiply-add of consecutive channels ([`depthwise`]). The crate is built for
//! baseline x86-64, so the instruction set (AVX-512, AVX2, or none) is chosen at run time
//! (`simd::level`).

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod bf16;
pub mod depthwise;
#[cfg(target_arch = "x86_64")]
pub mod dpbf16;
pub mod gemm;
pub(crate) mod lines;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;

/// Bumped whenever the BF16 path's arithmetic changes (what is rounded, in which order
/// products are summed), since that changes the features it gives: it is part of the BF16
/// model id, so caches of the old features are rebuilt rather than ranked beside new ones.
/// Version 2: the band-by-band AMX products (session 10).
pub const BF16_ARITHMETIC_VERSION: u32 = 2;

/// What a BF16 model id ends with on this CPU: the arithmetic's version and the engine's
/// tag (`bf16::Engine::id_tag`: the engines round different sets of layers).
pub fn bf16_id_suffix() -> String {
    #[cfg(target_arch = "x86_64")]
    let engine = bf16::engine().map_or("", bf16::Engine::id_tag);
    #[cfg(not(target_arch = "x86_64"))]
    let engine = "";
    format!("-bf16v{BF16_ARITHMETIC_VERSION}{engine}")
}

/// TensorFlow "SAME" padding as used by EfficientNet-Lite: output = ceil(input / stride),
/// with the odd pixel of padding at the bottom/right. Returns (out, pad_before).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (out, total / 2)
}

/// Clamps to [0, 6]; written with max/min (not `clamp`, whose NaN handling blocks
/// vectorisation).
#[allow(clippy::manual_clamp)]
fn relu6(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0).min(6.0);
    }
}

/// Unfolds the K x K patches ("SAME" padding, stride `s`) of a CHW image into the rows of
/// an `(oh * ow) x (c * K * K)` matrix, each row ordered (c, ky, kx) like a flattened
/// convolution weight, so a dense convolution becomes one [`gemm::PointwiseConv`] product.
/// Only output rows `rows` are unfolded (callers go band by band, so the unfolded band
/// stays in cache for the product) into the first `rows.len() * ow` rows of `out`.
pub fn im2col<const K: usize>(
    image: &[f32],
    (c, h, w): (usize, usize, usize),
    s: usize,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    assert_eq!(image.len(), c * h * w, "image is c x h x w");
    let (oh, pad_top) = same_padding(h, K, s);
    let (ow, pad_left) = same_padding(w, K, s);
    assert!(rows.end <= oh, "rows {rows:?} beyond the {oh} output rows");
    let row_len = c * K * K;
    let pixels = rows.len() * ow;
    assert!(out.len() >= pixels * row_len, "out holds the band");
    for (pixel, row) in out[..pixels * row_len]
        .chunks_exact_mut(row_len)
        .enumerate()
    {
        let (y0, x0) = ((rows.start + pixel / ow) * s, pixel % ow * s);
        let interior =
            y0 >= pad_top && x0 >= pad_left && y0 + K <= h + pad_top && x0 + K <= w + pad_left;
        for (ch, patch) in row.chunks_exact_mut(K * K).enumerate() {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for (ky, dst) in patch.chunks_exact_mut(K).enumerate() {
                if interior {
                    // The common case: K contiguous input values, no padding.
                    let start = (y0 + ky - pad_top) * w + x0 - pad_left;
                    let src: &[f32; K] = plane[start..start + K].try_into().expect("K values");
                    dst.copy_from_slice(src);
                    continue;
                }
                let iy = (y0 + ky).checked_sub(pad_top).filter(|&y| y < h);
                for (kx, d) in dst.iter_mut().enumerate() {
                    let ix = (x0 + kx).checked_sub(pad_left).filter(|&x| x < w);
                    *d = match (iy, ix) {
                        (Some(iy), Some(ix)) => plane[iy * w + ix],
                        _ => 0.0,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_tensorflow_same() {
        assert_eq!(same_padding(224, 3, 2), (112, 0));
        assert_eq!(same_padding(56, 5, 2), (28, 1));
        assert_eq!(same_padding(14, 5, 1), (14, 2));
    }

    #[test]
    fn im2col_rows_are_padded_patches() {
        // One 3x3 channel holding 1..9, 3x3 kernel, stride 2: output 2x2, with
        // (2-1)*2+3-3 = 2 pixels of padding per axis, 1 before and 1 after.
        let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut cols = vec![f32::NAN; 50]; // stale values are overwritten
        im2col::<3>(&image, (1, 3, 3), 2, 0..2, &mut cols);
        // Pixel (0,0) reads rows -1..2 and columns -1..2.
        assert_eq!(&cols[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        // Pixel (1,1) reads rows 1..4 and columns 1..4.
        assert_eq!(&cols[27..36], &[5., 6., 0., 8., 9., 0., 0., 0., 0.]);
        // The second output row alone.
        im2col::<3>(&image, (1, 3, 3), 2, 1..2, &mut cols);
        assert_eq!(&cols[9..18], &[5., 6., 0., 8., 9., 0., 0., 0., 0.]);
    }
}
