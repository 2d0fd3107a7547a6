//! The tokenizers' convolutional layers routed to the WGSL kernels: on wgpu devices the 3x3
//! convolution (with the decoder's nearest x2 up-sampling fused in) and GroupNorm + SiLU run as
//! one kernel each (tessera-kernels); elsewhere, and so for the fixtures on the CPU backend,
//! burn's own modules run.

use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use tessera_kernels::{Padding, conv3x3, group_norm, kernels_enabled};

use crate::resize::upsample_nearest2x;
use crate::weights::StateDict;

/// `SiLU(GroupNorm(x))`.
pub(crate) fn norm_silu(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) if kernels_enabled(&x.device()) => {
            group_norm(x, gamma.val(), beta.val(), norm.num_groups, norm.epsilon as f32, true)
        }
        _ => tessera_kernels::activation::silu(norm.forward(x)),
    }
}

/// A 3×3, stride-1, pad-1 convolution with reflect padding (the column tokenizer's; `conv` is
/// built without padding of its own). `conv3x3` picks the kernel or its plain-ops twin.
pub(crate) fn conv3_reflect(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv3x3(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), Padding::Reflect, 1)
}

/// A 3×3, stride-1, pad-1 (zero) convolution of `x` up-sampled ×`upsample` (nearest; 1 = none).
pub(crate) fn conv3(conv: &Conv2d, x: Tensor<4>, upsample: usize) -> Tensor<4> {
    if kernels_enabled(&x.device()) {
        conv3x3(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), Padding::Zero, upsample)
    } else if upsample == 2 {
        conv.forward(upsample_nearest2x(x))
    } else {
        conv.forward(x)
    }
}

/// The tokenizers' residual block: GN → SiLU → conv3 → GN → SiLU → conv3, plus a residual. When
/// the width is kept the residual is the input. When it changes, the 1×1 `nin_shortcut` maps the
/// input (VAR's taming-style block, the column tokenizer's LDM block) or, with
/// `shortcut_on_output`, the block's own output (the MaskGIT-VQGAN quirk the released weights
/// depend on: `h + nin_shortcut(h)`, the input dropped). With `reflect` the 3×3 convolutions pad
/// by reflection (the column tokenizer) instead of zeros.
#[derive(Module, Debug)]
pub(crate) struct ResnetBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub nin_shortcut: Option<Conv2d>,
    pub shortcut_on_output: bool,
    pub reflect: bool,
}

impl ResnetBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let conv = |c: &Conv2d, x| if self.reflect { conv3_reflect(c, x) } else { conv3(c, x, 1) };
        let h = conv(&self.conv1, norm_silu(&self.norm1, x.clone()));
        let h = conv(&self.conv2, norm_silu(&self.norm2, h));
        match &self.nin_shortcut {
            Some(nin) if self.shortcut_on_output => h.clone() + nin.forward(h),
            Some(nin) => nin.forward(x) + h,
            None => x + h,
        }
    }

    /// Loads `{p}.norm1`, `{p}.conv1`, `{p}.norm2`, `{p}.conv2` and `{p}.nin_shortcut` (official names).
    pub fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.norm1 = sd.group_norm(&format!("{p}.norm1"), self.norm1)?;
        self.conv1 = sd.conv2d(&format!("{p}.conv1"), self.conv1)?;
        self.norm2 = sd.group_norm(&format!("{p}.norm2"), self.norm2)?;
        self.conv2 = sd.conv2d(&format!("{p}.conv2"), self.conv2)?;
        if let Some(nin) = self.nin_shortcut.take() {
            self.nin_shortcut = Some(sd.conv2d(&format!("{p}.nin_shortcut"), nin)?);
        }
        Ok(self)
    }
}
