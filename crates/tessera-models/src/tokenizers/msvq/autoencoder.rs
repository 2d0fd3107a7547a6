//! Encoder and decoder of [`super::MsVqVae`] (official `models/basic_vae.py`, after the LDM /
//! taming-transformers `Encoder` and `Decoder`): res blocks with GroupNorm(32, eps 1e-6) and SiLU,
//! single-head self-attention at the lowest resolution and in the middle, zero-pad + stride-2
//! conv down, nearest ×2 + conv up.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use tessera_kernels::{AttentionMask, attention, kernels_enabled};

use super::MsVqVaeConfig;
use crate::tokenizers::layers::{ResnetBlock, conv3, norm_silu};
use crate::weights::StateDict;

// On wgpu devices the 3x3 convolutions, GroupNorm + SiLU ([`crate::tokenizers::layers`]) and the
// attention blocks run on the WGSL kernels (tessera-kernels); elsewhere burn's own modules run.

impl MsVqVaeConfig {
    fn norm(&self, channels: usize, device: &Device) -> GroupNorm {
        GroupNormConfig::new(self.num_groups, channels)
            .with_epsilon(1e-6)
            .init(device)
    }

    fn resnet(&self, c_in: usize, c_out: usize, device: &Device) -> ResnetBlock {
        ResnetBlock {
            norm1: self.norm(c_in, device),
            conv1: conv(c_in, c_out, 3, device),
            norm2: self.norm(c_out, device),
            conv2: conv(c_out, c_out, 3, device),
            nin_shortcut: (c_in != c_out).then(|| conv(c_in, c_out, 1, device)),
            shortcut_on_output: false,
            reflect: false,
        }
    }

    fn attn(&self, c: usize, device: &Device) -> AttnBlock {
        AttnBlock {
            norm: self.norm(c, device),
            qkv: conv(c, 3 * c, 1, device),
            proj_out: conv(c, c, 1, device),
            channels: c,
        }
    }

    fn mid(&self, c: usize, device: &Device) -> Mid {
        Mid {
            block_1: self.resnet(c, c, device),
            attn_1: self.using_mid_sa.then(|| self.attn(c, device)),
            block_2: self.resnet(c, c, device),
        }
    }

    pub(super) fn init_encoder(&self, device: &Device) -> Encoder {
        let levels = self.ch_mult.len();
        let mut block_in = self.ch;
        let mut down = Vec::with_capacity(levels);
        for (i_level, mult) in self.ch_mult.iter().enumerate() {
            let block_out = self.ch * mult;
            let mut block = Vec::new();
            let mut attn = Vec::new();
            for _ in 0..self.num_res_blocks {
                block.push(self.resnet(block_in, block_out, device));
                block_in = block_out;
                if i_level == levels - 1 && self.using_sa {
                    attn.push(self.attn(block_in, device));
                }
            }
            // Downsample2x: zero pad right and bottom by 1, then a stride-2 3×3 conv.
            let downsample = (i_level != levels - 1).then(|| Downsample2x {
                conv: Conv2dConfig::new([block_in, block_in], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
                    .init(device),
            });
            down.push(EncoderLevel {
                block,
                attn,
                downsample,
            });
        }
        Encoder {
            conv_in: conv(self.in_channels, self.ch, 3, device),
            down,
            mid: self.mid(block_in, device),
            norm_out: self.norm(block_in, device),
            conv_out: conv(block_in, self.z_channels, 3, device),
        }
    }

    pub(super) fn init_decoder(&self, device: &Device) -> Decoder {
        let levels = self.ch_mult.len();
        let mut block_in = self.ch * self.ch_mult[levels - 1];
        let conv_in = conv(self.z_channels, block_in, 3, device);
        let mid = self.mid(block_in, device);
        // Built from the lowest resolution up, stored by level index as the official `up`.
        let mut up: Vec<DecoderLevel> = Vec::with_capacity(levels);
        for i_level in (0..levels).rev() {
            let block_out = self.ch * self.ch_mult[i_level];
            let mut block = Vec::new();
            let mut attn = Vec::new();
            for _ in 0..=self.num_res_blocks {
                block.push(self.resnet(block_in, block_out, device));
                block_in = block_out;
                if i_level == levels - 1 && self.using_sa {
                    attn.push(self.attn(block_in, device));
                }
            }
            let upsample = (i_level != 0).then(|| Upsample2x {
                conv: conv(block_in, block_in, 3, device),
            });
            up.insert(
                0,
                DecoderLevel {
                    block,
                    attn,
                    upsample,
                },
            );
        }
        Decoder {
            conv_in,
            mid,
            up,
            norm_out: self.norm(block_in, device),
            conv_out: conv(block_in, self.in_channels, 3, device),
        }
    }
}

/// k×k conv with bias and "same" zero padding `k / 2`.
pub(super) fn conv(c_in: usize, c_out: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// Single-head spatial self-attention with a residual (official `AttnBlock`).
#[derive(Module, Debug)]
struct AttnBlock {
    norm: GroupNorm,
    /// One 1×1 conv producing q, k, v (3C channels).
    qkv: Conv2d,
    proj_out: Conv2d,
    channels: usize,
}

impl AttnBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let c = self.channels;
        let qkv = self
            .qkv
            .forward(self.norm.forward(x.clone()))
            .reshape([b, 3, c, h * w]);
        let part = |i: usize| qkv.clone().narrow(1, i, 1).reshape([b, c, h * w]);
        let scale = (c as f64).powf(-0.5);
        let out = if kernels_enabled(&x.device()) {
            // One head over the pixels: [B, 1, HW, C] each.
            let seq = |i: usize| part(i).swap_dims(1, 2).reshape([b, 1, h * w, c]);
            let out = attention(seq(0), seq(1), seq(2), &AttentionMask::None, scale as f32); // [B, 1, HW, C]
            out.reshape([b, h * w, c]).swap_dims(1, 2).reshape([b, c, h, w])
        } else {
            let (q, k, v) = (part(0).swap_dims(1, 2), part(1), part(2)); // [B, HW, C], [B, C, HW], [B, C, HW]
            let attn = softmax(q.matmul(k) * scale, 2); // [B, HW(q), HW(k)]
            v.matmul(attn.swap_dims(1, 2)).reshape([b, c, h, w]) // [B, C, HW(q)]
        };
        x + self.proj_out.forward(out)
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.norm = sd.group_norm(&format!("{p}.norm"), self.norm)?;
        self.qkv = sd.conv2d(&format!("{p}.qkv"), self.qkv)?;
        self.proj_out = sd.conv2d(&format!("{p}.proj_out"), self.proj_out)?;
        Ok(self)
    }
}

#[derive(Module, Debug)]
struct Downsample2x {
    conv: Conv2d,
}

#[derive(Module, Debug)]
struct Upsample2x {
    conv: Conv2d,
}

#[derive(Module, Debug)]
struct Mid {
    block_1: ResnetBlock,
    attn_1: Option<AttnBlock>,
    block_2: ResnetBlock,
}

impl Mid {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.block_1.forward(x);
        let h = match &self.attn_1 {
            Some(attn) => attn.forward(h),
            None => h,
        };
        self.block_2.forward(h)
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.block_1 = self.block_1.load(sd, &format!("{p}.block_1"))?;
        if let Some(attn) = self.attn_1.take() {
            self.attn_1 = Some(attn.load(sd, &format!("{p}.attn_1"))?);
        }
        self.block_2 = self.block_2.load(sd, &format!("{p}.block_2"))?;
        Ok(self)
    }
}

/// Res blocks (each followed by its attention at the lowest resolution), then an optional resample.
fn run_level(blocks: &[ResnetBlock], attn: &[AttnBlock], mut h: Tensor<4>) -> Tensor<4> {
    for (i, block) in blocks.iter().enumerate() {
        h = block.forward(h);
        if let Some(a) = attn.get(i) {
            h = a.forward(h);
        }
    }
    h
}

fn load_level(
    sd: &mut StateDict,
    p: &str,
    blocks: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
) -> crate::Result<(Vec<ResnetBlock>, Vec<AttnBlock>)> {
    let blocks = blocks
        .into_iter()
        .enumerate()
        .map(|(j, b)| b.load(sd, &format!("{p}.block.{j}")))
        .collect::<crate::Result<_>>()?;
    let attn = attn
        .into_iter()
        .enumerate()
        .map(|(j, a)| a.load(sd, &format!("{p}.attn.{j}")))
        .collect::<crate::Result<_>>()?;
    Ok((blocks, attn))
}

#[derive(Module, Debug)]
struct EncoderLevel {
    block: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    downsample: Option<Downsample2x>,
}

#[derive(Module, Debug)]
pub(super) struct Encoder {
    conv_in: Conv2d,
    down: Vec<EncoderLevel>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    /// `[B, in_channels, H, W]` → `[B, Cvae, H / f, W / f]`.
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = conv3(&self.conv_in, x, 1);
        for level in &self.down {
            h = run_level(&level.block, &level.attn, h);
            if let Some(down) = &level.downsample {
                h = down.conv.forward(h);
            }
        }
        let h = self.mid.forward(h);
        conv3(&self.conv_out, norm_silu(&self.norm_out, h), 1)
    }

    pub(super) fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        let levels = std::mem::take(&mut self.down);
        for (i, mut level) in levels.into_iter().enumerate() {
            let lp = format!("{p}.down.{i}");
            (level.block, level.attn) = load_level(sd, &lp, level.block, level.attn)?;
            if let Some(mut down) = level.downsample.take() {
                down.conv = sd.conv2d(&format!("{lp}.downsample.conv"), down.conv)?;
                level.downsample = Some(down);
            }
            self.down.push(level);
        }
        self.mid = self.mid.load(sd, &format!("{p}.mid"))?;
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}

#[derive(Module, Debug)]
struct DecoderLevel {
    block: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    upsample: Option<Upsample2x>,
}

#[derive(Module, Debug)]
pub(super) struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    /// Indexed by level (0 = full resolution), run from the last level down, as the official.
    up: Vec<DecoderLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    /// `[B, Cvae, h, w]` → `[B, in_channels, h·f, w·f]` (not clamped).
    pub(super) fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let mut h = self.mid.forward(conv3(&self.conv_in, z, 1));
        for level in self.up.iter().rev() {
            h = run_level(&level.block, &level.attn, h);
            if let Some(up) = &level.upsample {
                h = conv3(&up.conv, h, 2);
            }
        }
        conv3(&self.conv_out, norm_silu(&self.norm_out, h), 1)
    }

    pub(super) fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        self.mid = self.mid.load(sd, &format!("{p}.mid"))?;
        let levels = std::mem::take(&mut self.up);
        for (i, mut level) in levels.into_iter().enumerate() {
            let lp = format!("{p}.up.{i}");
            (level.block, level.attn) = load_level(sd, &lp, level.block, level.attn)?;
            if let Some(mut up) = level.upsample.take() {
                up.conv = sd.conv2d(&format!("{lp}.upsample.conv"), up.conv)?;
                level.upsample = Some(up);
            }
            self.up.push(level);
        }
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}
