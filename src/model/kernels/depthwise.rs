//! Depthwise k x k convolution on a channels-last (HWC) map, with the folded batch-norm bias
//! and ReLU6 fused, and TensorFlow "SAME" padding.
//!
//! Channels-last makes every tap a multiply-add of 16 consecutive channels, so the AVX-512
//! path needs no shuffles and no scalar tails (EfficientNet-Lite's depthwise layers all
//! have a multiple of 16 channels). Eight output pixels are computed together so that
//! eight independent accumulator chains hide the multiply-add latency; each vector of
//! channels is first copied into a zero-padded plane, so the blocks need no edge checks.

use super::same_padding;
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::lines::Lines;
#[cfg(target_arch = "x86_64")]
use super::simd::{self, Avx2, Avx512, Isa, Level};

/// Output pixels per register block.
const PIXELS: usize = 8;

pub struct DepthwiseConv {
    /// `k * k * channels`, tap-major (`[ky][kx][c]`).
    weight: Vec<f32>,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
}

/// Input and output geometry of one call: the whole map's, and which rows of it the call's
/// input and output slices hold (a band, or all of them).
#[derive(Clone, Copy)]
struct Geometry {
    in_h: usize,
    in_w: usize,
    out_w: usize,
    pad_top: usize,
    pad_left: usize,
    /// The first input row the input slice holds.
    in_first: usize,
    /// The output rows computed, `out_first..out_end`, which the output slice holds.
    out_first: usize,
    out_end: usize,
}

impl DepthwiseConv {
    /// From PyTorch's `(c, 1, k, k)` weight.
    pub fn new(weight: &[f32], bias: &[f32], kernel: usize, stride: usize) -> Self {
        let c = bias.len();
        assert_eq!(weight.len(), c * kernel * kernel, "weight is c x k x k");
        let mut tap_major = vec![0f32; weight.len()];
        for (ch, taps) in weight.chunks_exact(kernel * kernel).enumerate() {
            for (t, &w) in taps.iter().enumerate() {
                tap_major[t * c + ch] = w;
            }
        }
        Self {
            weight: tap_major,
            bias: bias.to_vec(),
            kernel,
            stride,
        }
    }

    pub fn kernel(&self) -> usize {
        self.kernel
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Output height and width for an `h x w` input.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            same_padding(h, self.kernel, self.stride).0,
            same_padding(w, self.kernel, self.stride).0,
        )
    }

    /// The geometry of output rows `out_rows` from an input slice of `in_len` values that
    /// starts at row `in_first`; panics unless the slices hold every row the band touches.
    fn geometry(
        &self,
        (in_h, in_w): (usize, usize),
        (in_first, in_len): (usize, usize),
        out_rows: Range<usize>,
        out_len: usize,
    ) -> Geometry {
        let (out_h, pad_top) = same_padding(in_h, self.kernel, self.stride);
        let (out_w, pad_left) = same_padding(in_w, self.kernel, self.stride);
        let c = self.bias.len();
        let needed = self.input_rows(out_rows.clone(), in_h);
        assert!(out_rows.end <= out_h, "output rows past the map");
        assert!(
            in_len.is_multiple_of(in_w * c)
                && in_first <= needed.start
                && in_first + in_len / (in_w * c) >= needed.end,
            "input band misses rows"
        );
        assert_eq!(
            out_len,
            out_rows.len() * out_w * c,
            "output is its rows x ow x c"
        );
        Geometry {
            in_h,
            in_w,
            out_w,
            pad_top,
            pad_left,
            in_first,
            out_first: out_rows.start,
            out_end: out_rows.end,
        }
    }

    /// The input rows that output rows `out_rows` read (padding excluded), for a map `h`
    /// rows high.
    pub fn input_rows(&self, out_rows: Range<usize>, h: usize) -> Range<usize> {
        if out_rows.is_empty() {
            return 0..0;
        }
        let pad_top = same_padding(h, self.kernel, self.stride).1;
        let start = (out_rows.start * self.stride).saturating_sub(pad_top);
        let end = ((out_rows.end - 1) * self.stride + self.kernel).saturating_sub(pad_top);
        start.min(h)..end.min(h)
    }

    /// `out = relu6(dwconv(input) + bias)`, both HWC.
    pub fn apply(&self, input: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let out_h = self.output_size(h, w).0;
        self.apply_band(input, h, w, 0, 0..out_h, out);
    }

    /// Output rows `out_rows` of an `h x w` map into `out`, from `input`, which holds the
    /// map's rows from `first_row` on (at least those [`Self::input_rows`] names): so a
    /// block can run its layers band by band while the band stays in cache.
    pub fn apply_band(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        first_row: usize,
        out_rows: Range<usize>,
        out: &mut [f32],
    ) {
        let g = self.geometry((h, w), (first_row, input.len()), out_rows, out.len());
        #[cfg(target_arch = "x86_64")]
        return self.apply_at(simd::level(), input, g, out);
        #[cfg(not(target_arch = "x86_64"))]
        self.apply_loops(input, g, out);
    }

    /// `apply_band` with the given instruction set, which the CPU must have (`simd::level`
    /// or lower; tests run every level the CPU has).
    #[cfg(target_arch = "x86_64")]
    fn apply_at(&self, level: Level, input: &[f32], g: Geometry, out: &mut [f32]) {
        let c = self.bias.len();
        macro_rules! by_shape {
            ($run:ident) => {
                match (self.kernel, self.stride) {
                    (3, 1) => return self.$run::<3, 1>(input, out, g),
                    (3, 2) => return self.$run::<3, 2>(input, out, g),
                    (5, 1) => return self.$run::<5, 1>(input, out, g),
                    (5, 2) => return self.$run::<5, 2>(input, out, g),
                    _ => {}
                }
            };
        }
        // SAFETY: the CPU has the instruction set (AVX-512 implies AVX2 on every CPU that
        // `simd::level` lets through) and the channels fill whole vectors; `geometry`
        // checked that both slices hold the rows `g` reads and writes.
        unsafe {
            if level == Level::Avx512 && c.is_multiple_of(Avx512::LANES) {
                by_shape!(run_avx512);
            }
            if level != Level::Portable && c.is_multiple_of(Avx2::LANES) {
                by_shape!(run_avx2);
            }
        }
        self.apply_portable_band(input, g, out);
    }

    /// Plain loops over pixels, taps and channels, vectorised over channels by the
    /// compiler: with AVX2 and FMA where the CPU has them (chosen at run time, the crate
    /// being built for baseline x86-64).
    pub fn apply_portable(&self, input: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let out_h = self.output_size(h, w).0;
        let g = self.geometry((h, w), (0, input.len()), 0..out_h, out.len());
        self.apply_portable_band(input, g, out);
    }

    fn apply_portable_band(&self, input: &[f32], g: Geometry, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::simd::level() != super::simd::Level::Portable {
            // SAFETY: the CPU has AVX2 and FMA (every level above portable implies them).
            return unsafe { self.apply_avx2(input, g, out) };
        }
        self.apply_loops(input, g, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2(&self, input: &[f32], g: Geometry, out: &mut [f32]) {
        self.apply_loops(input, g, out)
    }

    #[inline(always)]
    fn apply_loops(&self, input: &[f32], g: Geometry, out: &mut [f32]) {
        let c = self.bias.len();
        let (k, s) = (self.kernel, self.stride);
        let (h, w) = (g.in_h, g.in_w);
        for oy in g.out_first..g.out_end {
            for ox in 0..g.out_w {
                let at = ((oy - g.out_first) * g.out_w + ox) * c;
                let o = &mut out[at..at + c];
                o.copy_from_slice(&self.bias);
                for ky in 0..k {
                    let Some(iy) = (oy * s + ky).checked_sub(g.pad_top).filter(|&y| y < h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = (ox * s + kx).checked_sub(g.pad_left).filter(|&x| x < w)
                        else {
                            continue;
                        };
                        let at = ((iy - g.in_first) * w + ix) * c;
                        let i = &input[at..at + c];
                        let t = &self.weight[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                        for ((o, i), t) in o.iter_mut().zip(i).zip(t) {
                            *o += i * t;
                        }
                    }
                }
                super::relu6(o);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512<const K: usize, const S: usize>(
        &self,
        i: &[f32],
        o: &mut [f32],
        g: Geometry,
    ) {
        let sink = Pixels::new(o, self.bias.len());
        // SAFETY: forwarded from the caller.
        unsafe { self.rows::<Avx512, _, K, S>(i, &sink, g) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2<const K: usize, const S: usize>(
        &self,
        i: &[f32],
        o: &mut [f32],
        g: Geometry,
    ) {
        let sink = Pixels::new(o, self.bias.len());
        // SAFETY: forwarded from the caller.
        unsafe { self.rows::<Avx2, _, K, S>(i, &sink, g) }
    }

    /// Whether [`Self::apply_band_bf16`] runs here: AVX-512 with AVX512-BF16, and whole
    /// vectors of channels.
    #[cfg(target_arch = "x86_64")]
    pub fn writes_bf16(&self) -> bool {
        simd::level() == Level::Avx512
            && is_x86_feature_detected!("avx512bf16")
            && self.bias.len().is_multiple_of(Avx512::LANES)
    }

    /// [`Self::apply_band`] into BF16 rows, `stride` values per output pixel (its channels
    /// rounded to nearest even, then zeros), as the BF16 product of the next 1x1 layer
    /// reads them (`PointwiseConv::bf16_rows`): the output is rounded once, where it is
    /// made, and never written in FP32. Panics unless [`Self::writes_bf16`].
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    pub fn apply_band_bf16(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        first_row: usize,
        out_rows: Range<usize>,
        rows: &mut [u16],
        stride: usize,
    ) {
        assert!(self.writes_bf16(), "BF16 output needs AVX512-BF16");
        let c = self.bias.len();
        let pixels = out_rows.len() * self.output_size(h, w).1;
        assert!(
            stride >= c && rows.len() >= pixels * stride,
            "rows hold every pixel"
        );
        let g = self.geometry((h, w), (first_row, input.len()), out_rows, pixels * c);
        // The padding lanes (a few vectors, or none) zeroed in place: `fill` would call
        // `memset` once per pixel, which cost more than the zeros.
        if stride > c {
            for row in rows[..pixels * stride].chunks_exact_mut(stride) {
                for lanes in row[c..].chunks_mut(16) {
                    lanes.copy_from_slice(&[0; 16][..lanes.len()]);
                }
            }
        }
        let sink = Bf16Rows {
            out: rows.as_mut_ptr(),
            stride,
        };
        macro_rules! by_shape {
            ($($k:literal, $s:literal);*) => {
                match (self.kernel, self.stride) {
                    // SAFETY: the CPU has AVX-512 and AVX512-BF16 and the channels fill
                    // whole vectors (asserted); `geometry` checked the input rows and the
                    // assert above the output pixels.
                    $(($k, $s) => unsafe { self.run_avx512_bf16::<$k, $s>(input, &sink, g) },)*
                    _ => unreachable!("EfficientNet's depthwise shapes are 3 or 5, stride 1 or 2"),
                }
            };
        }
        by_shape!(3, 1; 3, 2; 5, 1; 5, 2)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn run_avx512_bf16<const K: usize, const S: usize>(
        &self,
        i: &[f32],
        sink: &Bf16Rows,
        g: Geometry,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { self.rows::<Avx512, _, K, S>(i, sink, g) }
    }

    /// Safety: the CPU has `I`'s instruction set, the channels are a multiple of its lanes
    /// and both maps have the sizes `apply` asserts.
    ///
    /// One vector of channels at a time, the input rows the output rows read are copied
    /// into a plane with the zero padding written out (`PLANE`), so the register blocks
    /// read every tap without a bounds check or a mask, at fixed offsets. The copy is one
    /// load and one store per input vector, against `K * K / (S * S)` multiply-adds; edge
    /// checks inside the blocks cost more (on 14 x 14 and 7 x 7 maps every block is at an
    /// edge), and branches around the multiply-adds made the compiler keep the
    /// accumulators on the stack.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn rows<I: Isa, O: Sink<I>, const K: usize, const S: usize>(
        &self,
        input: &[f32],
        out: &O,
        g: Geometry,
    ) {
        if g.out_first == g.out_end {
            return;
        }
        let c = self.bias.len();
        let lanes = I::LANES;
        // Plane row r is padded row `out_first * S + r`; plane column x is padded column x,
        // and there are enough for whole blocks of PIXELS output pixels.
        let plane_h = (g.out_end - g.out_first - 1) * S + K;
        let blocks = g.out_w.div_ceil(PIXELS);
        let plane_w = (blocks * PIXELS - 1) * S + K;
        let row_len = plane_w * lanes;
        let first_row = g.out_first * S;
        // The plane rows that hold input rows (the others are padding), and the first
        // one's input row counted from the input slice's first. Only these rows' input
        // columns are rewritten for each vector of channels: the padding stays zero.
        let copied = g.pad_top.saturating_sub(first_row)
            ..(g.pad_top + g.in_h).saturating_sub(first_row).min(plane_h);
        let first_input = (first_row + copied.start).saturating_sub(g.pad_top) - g.in_first;
        // Taken out of the thread-local for the call, not used inside a closure: a closure
        // has no target features, and the vector instructions would not inline into it.
        let mut buffer = PLANE.take();
        let plane = buffer.sized(plane_h * row_len);
        // The padding is zeroed once per call, and only the padding: zeroing the whole
        // plane was 0.6 % of a run (`memset`).
        for (r, row) in plane.chunks_exact_mut(row_len).enumerate() {
            if copied.contains(&r) {
                let (left, rest) = row.split_at_mut(g.pad_left * lanes);
                left.fill(0.0);
                rest[g.in_w * lanes..].fill(0.0);
            } else {
                row.fill(0.0);
            }
        }
        let plane = plane.as_mut_ptr();
        for cb in (0..c).step_by(lanes) {
            // SAFETY: `geometry` checked that the input holds rows `iy` (counted from
            // its first) of `in_w * c` values; the plane holds `plane_h` rows of
            // `plane_w >= pad_left + in_w` vectors.
            unsafe {
                for (r, iy) in copied.clone().zip(first_input..) {
                    let from = input.as_ptr().add(iy * g.in_w * c + cb);
                    let to = plane.add(r * row_len + g.pad_left * lanes);
                    for x in 0..g.in_w {
                        I::store(to.add(x * lanes), I::load(from.add(x * c)));
                    }
                }
            }
            for oy in g.out_first..g.out_end {
                let first_pixel = (oy - g.out_first) * g.out_w;
                for ox in (0..g.out_w).step_by(PIXELS) {
                    let count = (g.out_w - ox).min(PIXELS);
                    // SAFETY: the block reads plane rows (oy - out_first) * S.. + K and
                    // columns ox * S.. + (PIXELS - 1) * S + K, inside the plane by its
                    // size, and writes `count` pixels of output row oy.
                    unsafe {
                        let corner = plane.add(((oy - g.out_first) * S * plane_w + ox * S) * lanes);
                        self.block::<I, O, K, S>(corner, row_len, out, first_pixel + ox, cb, count)
                    }
                }
            }
        }
        PLANE.set(buffer);
    }

    /// Up to eight output pixels of one row, one vector of channels, from the plane whose
    /// first tap for the first pixel is at `corner` (plane rows `row_len` apart).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn block<I: Isa, O: Sink<I>, const K: usize, const S: usize>(
        &self,
        corner: *const f32,
        row_len: usize,
        out: &O,
        first_pixel: usize,
        cb: usize,
        count: usize,
    ) {
        // The columns of a kernel row fill at most PIXELS + 4 registers.
        const { assert!(K <= 5, "kernels of at most 5 x 5") };
        let c = self.bias.len();
        let lanes = I::LANES;
        // SAFETY (whole body): the caller keeps the block's taps inside the plane and its
        // `count` pixels inside the output; channels cb..cb + lanes < c.
        unsafe {
            let bias = I::load(self.bias.as_ptr().add(cb));
            let mut acc = [bias; PIXELS];
            // The row loop is kept a loop (its count hidden from the optimiser): unrolled,
            // its K * K tap loads were hoisted out of the blocks into stack slots and the
            // products reordered into one accumulator's dependent chain.
            for ky in 0..std::hint::black_box(K) {
                let row = corner.add(ky * row_len);
                let taps: [I::V; K] = std::array::from_fn(|kx| {
                    I::load(self.weight.as_ptr().add((ky * K + kx) * c + cb))
                });
                // Each column is loaded once, before the products, and the loops have no
                // conditions, so they unroll fully and the accumulators stay in registers.
                // With stride 2, pixel p's tap kx = 2t + phase reads column
                // 2 (p + t) + phase: within a column phase, column j feeds pixel j - t.
                for phase in 0..S {
                    let phase_taps = (K - phase).div_ceil(S);
                    let columns: [I::V; PIXELS + 4] = std::array::from_fn(|j| {
                        if j < PIXELS + phase_taps - 1 {
                            I::load(row.add((S * j + phase) * lanes))
                        } else {
                            I::zero()
                        }
                    });
                    for t in 0..phase_taps {
                        for (p, acc) in acc.iter_mut().enumerate() {
                            *acc = I::fma(columns[p + t], taps[S * t + phase], *acc);
                        }
                    }
                }
            }
            for (p, acc) in acc.iter().enumerate().take(count) {
                out.store(first_pixel + p, cb, I::relu6(*acc));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The zero-padded plane of one vector of channels that `rows` reads, reused from call
    /// to call.
    static PLANE: std::cell::Cell<Lines<f32>> = std::cell::Cell::default();
}

/// Where the register blocks store their finished vectors.
#[cfg(target_arch = "x86_64")]
trait Sink<I: Isa> {
    /// Stores channels `cb..cb + LANES` of output pixel `pixel` (counted from the band's
    /// first). Safety: the pixel and channels lie inside the output; the CPU has what the
    /// sink's instructions need.
    unsafe fn store(&self, pixel: usize, cb: usize, v: I::V);
}

/// FP32 output pixels of `c` channels each.
#[cfg(target_arch = "x86_64")]
struct Pixels {
    out: *mut f32,
    c: usize,
}

#[cfg(target_arch = "x86_64")]
impl Pixels {
    fn new(out: &mut [f32], c: usize) -> Self {
        Self {
            out: out.as_mut_ptr(),
            c,
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl<I: Isa> Sink<I> for Pixels {
    #[inline(always)]
    unsafe fn store(&self, pixel: usize, cb: usize, v: I::V) {
        // SAFETY: the caller keeps the pixel and channels inside the output.
        unsafe { I::store(self.out.add(pixel * self.c + cb), v) }
    }
}

/// BF16 rows of `stride` values per output pixel (see `apply_band_bf16`).
#[cfg(target_arch = "x86_64")]
struct Bf16Rows {
    out: *mut u16,
    stride: usize,
}

#[cfg(target_arch = "x86_64")]
impl Sink<Avx512> for Bf16Rows {
    #[inline(always)]
    unsafe fn store(&self, pixel: usize, cb: usize, v: std::arch::x86_64::__m512) {
        use std::arch::x86_64::*;
        // SAFETY: the caller keeps the pixel and channels inside the rows and runs with
        // AVX512-BF16; rounding to nearest even, as `bf16::to_bf16_rows` does.
        unsafe {
            let packed = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(self.out.add(pixel * self.stride + cb).cast(), packed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Direct evaluation of the definition on a CHW layout, independent of both paths.
    fn naive(x: &[f32], w: &[f32], b: &[f32], k: usize, s: usize, h: usize, wd: usize) -> Vec<f32> {
        let c = b.len();
        let (oh, pt) = same_padding(h, k, s);
        let (ow, pl) = same_padding(wd, k, s);
        let mut out = vec![0f32; oh * ow * c];
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[ch];
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - pt as isize;
                            let ix = (ox * s + kx) as isize - pl as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                let v = x[(iy as usize * wd + ix as usize) * c + ch];
                                acc += v * w[(ch * k + ky) * k + kx];
                            }
                        }
                    }
                    out[(oy * ow + ox) * c + ch] = acc.clamp(0.0, 6.0);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_for_every_kernel_stride_and_edge() {
        let mut rng = Rng::new(3);
        for &(k, s, h, w, c) in &[
            (3, 1, 7, 9, 16),
            (3, 2, 8, 8, 32),
            (5, 1, 14, 14, 16),
            (5, 2, 9, 23, 16),
            (3, 2, 1, 1, 16),
            (5, 2, 2, 3, 16),
            (3, 1, 5, 20, 8), // a multiple of 8 channels, not 16: AVX2 at most
            (3, 1, 5, 20, 3), // channels not a multiple of 8: the portable path
        ] {
            let x: Vec<f32> = (0..h * w * c).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let wt: Vec<f32> = (0..c * k * k).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let b: Vec<f32> = (0..c).map(|_| rng.f32()).collect();
            let conv = DepthwiseConv::new(&wt, &b, k, s);
            let want = naive(&x, &wt, &b, k, s, h, w);
            let (oh, ow) = conv.output_size(h, w);
            let mut results = Vec::new();
            let mut run = |path: &dyn Fn(&mut [f32])| {
                let mut out = vec![f32::NAN; oh * ow * c];
                path(&mut out);
                results.push(out);
            };
            run(&|out| conv.apply(&x, h, w, out));
            run(&|out| conv.apply_portable(&x, h, w, out));
            // Each instruction set this CPU has, whichever `apply` picked.
            #[cfg(target_arch = "x86_64")]
            {
                let g = conv.geometry((h, w), (0, x.len()), 0..oh, oh * ow * c);
                if is_x86_feature_detected!("avx512f") {
                    run(&|out| conv.apply_at(Level::Avx512, &x, g, out));
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    run(&|out| conv.apply_at(Level::Avx2, &x, g, out));
                }
            }
            // Band by band (bands of 1, 2 and 3 output rows), each from the input rows
            // it needs only, as a block's fused layers call it.
            for band in 1..=3 {
                run(&|out| {
                    for first in (0..oh).step_by(band) {
                        let rows = first..(first + band).min(oh);
                        let input = conv.input_rows(rows.clone(), h);
                        let out_band = &mut out[first * ow * c..rows.end * ow * c];
                        let x_band = &x[input.start * w * c..input.end * w * c];
                        conv.apply_band(x_band, h, w, input.start, rows, out_band);
                    }
                });
            }
            // An empty band writes nothing and reads nothing.
            conv.apply_band(&[], h, w, 0, 0..0, &mut []);
            for got in &results {
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-5, "k={k} s={s} {h}x{w}x{c}: max error {err}");
            }
        }
    }

    /// BF16 rows, band by band: each value is the FP32 output rounded to nearest even, the
    /// lanes past the channels are zero whatever the buffer held.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_rows_are_the_fp32_output_rounded() {
        let conv = DepthwiseConv::new(&[0.0; 16 * 9], &[0.0; 16], 3, 1);
        if !conv.writes_bf16() {
            eprintln!("no AVX512-BF16 on this CPU: the BF16 output is not exercised");
            return;
        }
        let mut rng = Rng::new(5);
        for &(k, s, h, w, c, stride) in &[
            (3, 1, 7, 9, 16, 32),
            (3, 2, 8, 8, 32, 32),
            (5, 1, 14, 14, 48, 64),
            (5, 2, 9, 23, 16, 48),
        ] {
            let x: Vec<f32> = (0..h * w * c).map(|_| rng.f32() * 8.0 - 4.0).collect();
            let wt: Vec<f32> = (0..c * k * k).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let b: Vec<f32> = (0..c).map(|_| rng.f32()).collect();
            let conv = DepthwiseConv::new(&wt, &b, k, s);
            let (oh, ow) = conv.output_size(h, w);
            let mut fp32 = vec![0f32; oh * ow * c];
            conv.apply(&x, h, w, &mut fp32);
            for band in [1, 2, oh] {
                let mut rows = vec![0xffff_u16; oh * ow * stride];
                for first in (0..oh).step_by(band) {
                    let out_rows = first..(first + band).min(oh);
                    let input = conv.input_rows(out_rows.clone(), h);
                    let x_band = &x[input.start * w * c..input.end * w * c];
                    let r = &mut rows[first * ow * stride..out_rows.end * ow * stride];
                    conv.apply_band_bf16(x_band, h, w, input.start, out_rows, r, stride);
                }
                for (pixel, row) in rows.chunks_exact(stride).enumerate() {
                    let want: Vec<u16> = fp32[pixel * c..(pixel + 1) * c]
                        .iter()
                        .map(|&v| super::super::bf16::bf16(v))
                        .chain(std::iter::repeat_n(0, stride - c))
                        .collect();
                    assert_eq!(row, &want[..], "k={k} s={s} {h}x{w}x{c} pixel {pixel}");
                }
            }
        }
    }
}
