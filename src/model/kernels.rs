//! CPU kernels where candle's generic path is slow.
//!
//! candle runs a grouped convolution as one convolution per group, which makes the
//! depthwise convolutions of EfficientNet (groups = channels) about 100x slower per FLOP
//! than its dense path (DESIGN.md, measured facts). `Depthwise` is a direct NCHW kernel
//! with the folded batch-norm bias and ReLU6 fused in. `Pointwise` runs a 1x1 convolution
//! as one GEMM per image with bias, residual and ReLU6 fused: candle's separate broadcast
//! add and clamp passes cost more than the product itself on the large early maps.
//! `Im2Col` turns the stem's dense 3x3 convolution into the same GEMM.

use crate::linalg::{Rhs, matmul};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// TensorFlow "SAME" padding as used by EfficientNet-Lite: output = ceil(input / stride),
/// with the odd pixel of padding at the bottom/right. Returns (out, pad_before).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (out, total / 2)
}

/// Depthwise convolution (one k x k filter per channel) with bias and optional ReLU6.
pub struct Depthwise {
    /// `channels * k * k` weights (batch-norm already folded in).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub kernel: usize,
    pub stride: usize,
    pub relu6: bool,
}

struct PlaneGeometry {
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    pad_top: usize,
    pad_left: usize,
}

impl Depthwise {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    /// One output plane. The input plane is first copied into `scratch` with its zero
    /// padding, and for stride 2 split into even and odd columns, so that every tap is a
    /// contiguous, bounds-check-free multiply-add over an output row (which vectorises).
    fn plane(
        &self,
        input: &[f32],
        out: &mut [f32],
        channel: usize,
        g: &PlaneGeometry,
        scratch: &mut (Vec<f32>, Vec<f32>),
    ) {
        let (k, s) = (self.kernel, self.stride);
        let taps = &self.weight[channel * k * k..(channel + 1) * k * k];
        // Padded plane covering every input position any tap reads.
        let padded_h = (g.out_h - 1) * s + k;
        let padded_w = (g.out_w - 1) * s + k;
        // Output rows are computed 8 lanes wide (AVX2) so no row ends in a scalar tail.
        let lanes_w = g.out_w.next_multiple_of(8);
        // Column phases: stride 1 has one (the row itself), stride 2 has even and odd; each
        // wide enough for the widest tap read.
        let phase_w = padded_w.div_ceil(s).max((k - 1) / s + lanes_w);
        let plane = &mut scratch.0;
        plane.clear();
        plane.resize(padded_h * s * phase_w, 0.0);
        for y in 0..g.in_h.min(padded_h.saturating_sub(g.pad_top)) {
            let py = y + g.pad_top;
            let src = &input[y * g.in_w..(y + 1) * g.in_w];
            let src = &src[..src.len().min(padded_w - g.pad_left)];
            if s == 1 {
                let dst = py * phase_w + g.pad_left;
                plane[dst..dst + src.len()].copy_from_slice(src);
            } else {
                // Stride 2: even columns to the first phase row, odd to the second.
                for (x, &v) in src.iter().enumerate() {
                    let px = x + g.pad_left;
                    plane[(py * 2 + (px & 1)) * phase_w + (px >> 1)] = v;
                }
            }
        }
        let (plane, acc) = (&scratch.0, &mut scratch.1);
        acc.clear();
        acc.resize(g.out_h * lanes_w, self.bias[channel]);
        let phases = PhasedPlane {
            data: plane,
            phase_w,
            stride: s,
        };
        accumulate_taps(acc, lanes_w, &phases, taps, k);
        for (row, wide) in out.chunks_exact_mut(g.out_w).zip(acc.chunks_exact(lanes_w)) {
            row.copy_from_slice(&wide[..g.out_w]);
        }
        if self.relu6 {
            relu6(out);
        }
    }
}

/// A zero-padded input plane, its columns split by phase (stride 1: one phase).
struct PhasedPlane<'a> {
    data: &'a [f32],
    phase_w: usize,
    stride: usize,
}

/// `out += taps (*) plane`, dispatched once per plane to an AVX2+FMA build of the same code
/// where the CPU has it (the crate is compiled for baseline x86-64, SSE2 only).
fn accumulate_taps(out: &mut [f32], out_w: usize, plane: &PhasedPlane, taps: &[f32], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was just checked for the features this build uses.
        return unsafe { accumulate_taps_avx2(out, out_w, plane, taps, k) };
    }
    accumulate_taps_generic(out, out_w, plane, taps, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_taps_avx2(
    out: &mut [f32],
    out_w: usize,
    plane: &PhasedPlane,
    taps: &[f32],
    k: usize,
) {
    accumulate_taps_generic(out, out_w, plane, taps, k)
}

#[inline(always)]
fn accumulate_taps_generic(
    out: &mut [f32],
    out_w: usize,
    plane: &PhasedPlane,
    taps: &[f32],
    k: usize,
) {
    let s = plane.stride;
    for (oy, row) in out.chunks_exact_mut(out_w).enumerate() {
        for ky in 0..k {
            let py = oy * s + ky;
            for kx in 0..k {
                let start = (py * s + kx % s) * plane.phase_w + kx / s;
                let w = taps[ky * k + kx];
                for (o, i) in row.iter_mut().zip(&plane.data[start..start + out_w]) {
                    *o += w * i;
                }
            }
        }
    }
}

/// Clamps to [0, 6]; written with max/min (not `clamp`, whose NaN handling blocks
/// vectorisation).
#[allow(clippy::manual_clamp)]
fn relu6(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0).min(6.0);
    }
}

/// `row[ox] += w * in_row[ox * stride + offset]` for every `ox` whose input is inside the row
/// (outside is zero padding). The stride-1 case is a plain slice zip, which vectorises.
fn accumulate_tap(row: &mut [f32], in_row: &[f32], w: f32, offset: isize, stride: usize) {
    let in_w = in_row.len() as isize;
    let s = stride as isize;
    // First and one-past-last output column whose input column lies in [0, in_w).
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let hi = ((in_w - offset + s - 1) / s).clamp(0, row.len() as isize);
    if lo >= hi {
        return;
    }
    let (lo, hi) = (lo as usize, hi as usize);
    let first = (lo as isize * s + offset) as usize;
    if stride == 1 {
        for (o, i) in row[lo..hi]
            .iter_mut()
            .zip(&in_row[first..first + (hi - lo)])
        {
            *o += w * i;
        }
    } else {
        for (o, i) in row[lo..hi]
            .iter_mut()
            .zip(in_row[first..].iter().step_by(stride))
        {
            *o += w * i;
        }
    }
}

impl CustomOp1 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = cpu_f32(self.name(), storage, layout)?;
        let (n, c, in_h, in_w) = layout.shape().dims4()?;
        if c * self.kernel * self.kernel != self.weight.len() {
            bail!("depthwise-conv2d: {c} channels do not match the weights")
        }
        let (out_h, pad_top) = same_padding(in_h, self.kernel, self.stride);
        let (out_w, pad_left) = same_padding(in_w, self.kernel, self.stride);
        let g = PlaneGeometry {
            in_h,
            in_w,
            out_h,
            out_w,
            pad_top,
            pad_left,
        };
        let mut out = vec![0f32; n * c * out_h * out_w];
        out.par_chunks_mut(out_h * out_w).enumerate().for_each_init(
            Default::default,
            |scratch, (p, plane_out)| {
                let plane_in = &input[p * in_h * in_w..(p + 1) * in_h * in_w];
                self.plane(plane_in, plane_out, p % c, &g, scratch);
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((n, c, out_h, out_w))))
    }
}

/// The contiguous f32 data of a CPU tensor argument, and its dims.
fn cpu_f32<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{name}: only f32 is supported")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{name}: input must be contiguous")
    };
    Ok(&data[start..end])
}

/// Splits per-image work over the rayon pool: images in parallel when there are enough of
/// them, otherwise one image at a time with the GEMM itself parallel.
fn for_each_image(
    out: &mut [f32],
    per_image: usize,
    work: impl Fn(usize, &mut [f32], usize) + Sync,
) {
    let threads = rayon::current_num_threads();
    let images = out.len() / per_image.max(1);
    if images >= threads {
        out.par_chunks_mut(per_image)
            .enumerate()
            .for_each(|(i, o)| work(i, o, 1));
    } else {
        out.chunks_mut(per_image)
            .enumerate()
            .for_each(|(i, o)| work(i, o, threads));
    }
}

/// 1x1 convolution: `out = relu6?(W . x + bias [+ residual])` per image, W `cout x cin`.
pub struct Pointwise {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub relu6: bool,
}

impl Pointwise {
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        match residual {
            None => x.apply_op1_no_bwd(self),
            Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, self),
        }
    }

    fn run(
        &self,
        input: &[f32],
        layout: &Layout,
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, cin, h, w) = layout.shape().dims4()?;
        let cout = self.bias.len();
        if cout * cin != self.weight.len() {
            bail!("pointwise-conv: {cin} input channels do not match the weights")
        }
        let hw = h * w;
        if residual.is_some_and(|r| r.len() != n * cout * hw) {
            bail!("pointwise-conv: residual shape does not match the output")
        }
        let mut out = vec![0f32; n * cout * hw];
        for_each_image(&mut out, cout * hw, |i, o, threads| {
            // Start from bias (+ residual) and let the GEMM accumulate onto it.
            for (c, row) in o.chunks_exact_mut(hw).enumerate() {
                match residual {
                    Some(r) => {
                        let r = &r[(i * cout + c) * hw..(i * cout + c + 1) * hw];
                        row.iter_mut()
                            .zip(r)
                            .for_each(|(o, r)| *o = r + self.bias[c]);
                    }
                    None => row.fill(self.bias[c]),
                }
            }
            let x = &input[i * cin * hw..(i + 1) * cin * hw];
            matmul(o, &self.weight, x, Rhs::Plain, cout, hw, cin, true, threads);
            if self.relu6 {
                relu6(o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, cout, h, w))))
    }
}

impl CustomOp1 for Pointwise {
    fn name(&self) -> &'static str {
        "pointwise-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(
            cpu_f32(CustomOp1::name(self), storage, layout)?,
            layout,
            None,
        )
    }
}

impl CustomOp2 for Pointwise {
    fn name(&self) -> &'static str {
        "pointwise-conv-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let residual = cpu_f32(CustomOp2::name(self), s2, l2)?;
        self.run(cpu_f32(CustomOp2::name(self), s1, l1)?, l1, Some(residual))
    }
}

/// Unfolds k x k patches ("SAME" padding) into columns: (N, C, H, W) -> (N, C*k*k, OH, OW),
/// with rows ordered (c, ky, kx) like a flattened convolution weight.
pub struct Im2Col {
    pub kernel: usize,
    pub stride: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = cpu_f32(self.name(), storage, layout)?;
        let (n, c, in_h, in_w) = layout.shape().dims4()?;
        let (k, s) = (self.kernel, self.stride);
        let (out_h, pad_top) = same_padding(in_h, k, s);
        let (out_w, pad_left) = same_padding(in_w, k, s);
        let plane = out_h * out_w;
        let mut out = vec![0f32; n * c * k * k * plane];
        out.par_chunks_mut(plane).enumerate().for_each(|(row, o)| {
            let (image, rest) = (row / (c * k * k), row % (c * k * k));
            let (ch, ky, kx) = (rest / (k * k), rest % (k * k) / k, rest % k);
            let src = &input[(image * c + ch) * in_h * in_w..(image * c + ch + 1) * in_h * in_w];
            for oy in 0..out_h {
                let iy = (oy * s + ky) as isize - pad_top as isize;
                if iy < 0 || iy >= in_h as isize {
                    continue;
                }
                let in_row = &src[iy as usize * in_w..(iy as usize + 1) * in_w];
                let out_row = &mut o[oy * out_w..(oy + 1) * out_w];
                accumulate_tap(out_row, in_row, 1.0, kx as isize - pad_left as isize, s);
            }
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((n, c * k * k, out_h, out_w)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn assert_close(ours: &Tensor, reference: &Tensor) {
        assert_eq!(ours.dims(), reference.dims());
        let diff = (ours - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// The kernel against candle's own grouped convolution on explicitly padded input.
    fn check(k: usize, stride: usize, h: usize, w: usize) {
        let dev = Device::Cpu;
        let c = 3;
        let x = Tensor::randn(0f32, 1.0, (2, c, h, w), &dev).unwrap();
        let weight = Tensor::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
        let bias = vec![0.5f32, -0.25, 0.0];
        let op = Depthwise {
            weight: weight.flatten_all().unwrap().to_vec1().unwrap(),
            bias: bias.clone(),
            kernel: k,
            stride,
            relu6: false,
        };
        let ours = op.forward(&x).unwrap();
        let (oh, pt) = same_padding(h, k, stride);
        let (ow, pl) = same_padding(w, k, stride);
        let pb = ((oh - 1) * stride + k).saturating_sub(h) - pt;
        let pr = ((ow - 1) * stride + k).saturating_sub(w) - pl;
        let padded = x
            .pad_with_zeros(2, pt, pb)
            .unwrap()
            .pad_with_zeros(3, pl, pr)
            .unwrap();
        let reference = padded
            .conv2d(&weight, 0, stride, 1, c)
            .unwrap()
            .broadcast_add(
                &Tensor::new(bias, &dev)
                    .unwrap()
                    .reshape((1, c, 1, 1))
                    .unwrap(),
            )
            .unwrap();
        assert_close(&ours, &reference);
    }

    #[test]
    fn matches_grouped_convolution() {
        for (k, s, h, w) in [
            (3, 1, 7, 9),
            (3, 2, 8, 8),
            (5, 1, 6, 5),
            (5, 2, 9, 7),
            (3, 2, 1, 1),
            (5, 2, 2, 3),
        ] {
            check(k, s, h, w);
        }
    }

    #[test]
    fn pointwise_with_residual_and_stem_im2col_match_candle() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (7, 4, 1, 1), &dev).unwrap();
        let bias: Vec<f32> = (0..7).map(|i| i as f32 * 0.1).collect();
        let residual = Tensor::randn(0f32, 1.0, (3, 7, 5, 6), &dev).unwrap();
        let op = Pointwise {
            weight: w.flatten_all().unwrap().to_vec1().unwrap(),
            bias: bias.clone(),
            relu6: true,
        };
        let ours = op.forward(&x, Some(&residual)).unwrap();
        let b = Tensor::new(bias, &dev)
            .unwrap()
            .reshape((1, 7, 1, 1))
            .unwrap();
        let reference = (x.conv2d(&w, 0, 1, 1, 1).unwrap().broadcast_add(&b).unwrap() + &residual)
            .unwrap()
            .clamp(0f32, 6f32)
            .unwrap();
        assert_close(&ours, &reference);

        // Stem: 3x3 stride-2 dense convolution = im2col + pointwise.
        let x = Tensor::randn(0f32, 1.0, (2, 3, 9, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (5, 3, 3, 3), &dev).unwrap();
        let cols = x
            .apply_op1_no_bwd(&Im2Col {
                kernel: 3,
                stride: 2,
            })
            .unwrap();
        let op = Pointwise {
            weight: w.flatten_all().unwrap().to_vec1().unwrap(),
            bias: vec![0.0; 5],
            relu6: false,
        };
        let ours = op.forward(&cols, None).unwrap();
        let padded = x
            .pad_with_zeros(2, 1, 1)
            .unwrap()
            .pad_with_zeros(3, 0, 1)
            .unwrap();
        let reference = padded.conv2d(&w, 0, 2, 1, 1).unwrap();
        assert_close(&ours, &reference);
    }

    #[test]
    fn same_padding_is_tensorflow_same() {
        assert_eq!(same_padding(224, 3, 2), (112, 0));
        assert_eq!(same_padding(56, 5, 2), (28, 1));
        assert_eq!(same_padding(14, 5, 1), (14, 2));
    }
}
