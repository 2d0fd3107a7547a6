//! The tokenizers' convolutional layers routed to the WGSL kernels: on wgpu devices the 3x3
//! convolution (with the decoder's nearest x2 up-sampling fused in) and GroupNorm + SiLU run as
//! one kernel each (tessera-kernels); elsewhere, and so for the fixtures on the CPU backend,
//! burn's own modules run.

use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::silu;

use tessera_kernels::{Padding, conv3x3, group_norm, kernels_enabled};

use crate::resize::upsample_nearest2x;

/// `SiLU(GroupNorm(x))`.
pub(crate) fn norm_silu(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) if kernels_enabled(&x.device()) => {
            group_norm(x, gamma.val(), beta.val(), norm.num_groups, norm.epsilon as f32, true)
        }
        _ => silu(norm.forward(x)),
    }
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
