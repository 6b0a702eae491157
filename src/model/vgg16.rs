//! VGG16 (Simonyan & Zisserman 2014) up to a chosen layer, for the tutorial-faithful mode:
//! the tutorial flattened Keras' `block5_conv3` (14x14x512 at 224 px = 100,352 values).
//!
//! No VGG16 weights can be bundled, so they come from a user-given safetensors file with
//! torchvision's key names (`features.N.weight`, `features.N.bias`). Channel counts are
//! read from the file, so any width of the VGG16 topology loads.

use super::{Backbone, Tap};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// torchvision `features` indices of the 13 convolutions, in order, grouped by block.
const BLOCKS: [&[usize]; 5] = [
    &[0, 2],
    &[5, 7],
    &[10, 12, 14],
    &[17, 19, 21],
    &[24, 26, 28],
];

enum Layer {
    /// 3x3 convolution, padding 1, followed by ReLU.
    Conv { weight: Tensor, bias: Tensor },
    /// 2x2 max pooling, stride 2.
    Pool,
}

pub struct Vgg16 {
    layers: Vec<Layer>,
}

impl Vgg16 {
    /// Keras layer names (`block5_conv3`, `block4_pool`, ...) to the number of layers to run.
    pub fn parse_tap(layer: &str) -> Option<Tap> {
        let mut count = 0;
        for (b, convs) in BLOCKS.iter().enumerate() {
            for c in 0..convs.len() {
                count += 1;
                if layer == format!("block{}_conv{}", b + 1, c + 1) {
                    return Some(Tap::Block(count));
                }
            }
            count += 1;
            if layer == format!("block{}_pool", b + 1) {
                return Some(Tap::Block(count));
            }
        }
        None
    }

    pub fn load(vb: &VarBuilder, tap: Tap) -> Result<Self> {
        let depth = match tap {
            Tap::Block(n) => n,
            Tap::Head => 18,
        };
        let mut layers = Vec::new();
        for convs in BLOCKS {
            for &index in convs {
                let weight = vb.get_unchecked(&format!("features.{index}.weight"))?;
                let bias = vb.get_unchecked(&format!("features.{index}.bias"))?;
                let bias = bias.reshape((1, (), 1, 1))?;
                layers.push(Layer::Conv { weight, bias });
            }
            layers.push(Layer::Pool);
        }
        layers.truncate(depth);
        Ok(Self { layers })
    }
}

impl Backbone for Vgg16 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = match layer {
                Layer::Conv { weight, bias } => {
                    x.conv2d(weight, 1, 1, 1, 1)?.broadcast_add(bias)?.relu()?
                }
                Layer::Pool => x.max_pool2d(2)?,
            };
        }
        Ok(x)
    }
}
