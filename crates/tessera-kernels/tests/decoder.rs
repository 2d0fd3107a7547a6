//! The fused 3x3 convolution (zero/reflect padding, nearest 2x up-sampling) against the plain ops.

mod common;

use burn::tensor::{Device, Tensor};
use common::{from_vec, gpu, max_abs_diff, random, to_vec};
use tessera_kernels::decoder::{
    Padding, conv3x3, conv3x3_reference, group_norm, group_norm_reference, pixel_shuffle, pixel_shuffle_reference,
};
use tessera_kernels::kernels_enabled;

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn conv3x3_matches_plain_ops() {
    let device = gpu();
    assert!(kernels_enabled(&device));
    // [B, Cin, H, W], Cout, padding, up-sampling
    let cases = [
        ([1, 3, 16, 16], 8, Padding::Zero, 1),
        ([2, 5, 13, 7], 9, Padding::Reflect, 1),   // sides and channels not multiples of the tiles
        ([1, 32, 8, 8], 16, Padding::Reflect, 2),  // up-sampling fused
        ([1, 17, 5, 9], 3, Padding::Zero, 2),
        ([1, 1, 2, 2], 1, Padding::Reflect, 1),    // smallest reflectable image
        ([1, 64, 16, 16], 64, Padding::Zero, 1),   // a decoder block's width
        ([1, 40, 1, 1], 5, Padding::Reflect, 2),   // 1 pixel, reflectable after up-sampling
        ([1, 4, 6, 70], 5, Padding::Reflect, 1),   // three 32-pixel tiles across, the last partial
        ([2, 3, 9, 20], 4, Padding::Zero, 2),      // 40 wide after up-sampling
    ];
    for (n, (shape, cout, padding, up)) in cases.into_iter().enumerate() {
        let seed = 900 + 10 * n as u64;
        let x = random(shape, seed, -1.0, 1.0, &device);
        let w = random([cout, shape[1], 3, 3], seed + 1, -0.5, 0.5, &device);
        let b = random([cout], seed + 2, -1.0, 1.0, &device);
        let fused = conv3x3(x.clone(), w.clone(), Some(b.clone()), padding, up);
        let plain = conv3x3_reference(x, w, Some(b), padding, up);
        assert_eq!(fused.dims(), [shape[0], cout, shape[2] * up, shape[3] * up]);
        let diff = max_abs_diff(&to_vec(fused), &to_vec(plain));
        eprintln!("decode conv3x3 {shape:?} -> {cout} {padding:?} up {up}: max abs diff {diff:.2e}");
        assert!(diff <= 1e-4, "{shape:?} {padding:?} up {up}: max abs diff {diff}");
    }
}

/// The padding rules themselves, on a tiny image through the plain path (CPU).
#[test]
fn padding_modes_follow_their_definition() {
    check_padding_modes(&Device::flex());
}

/// The same rules through the kernel.
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn padding_modes_follow_their_definition_in_the_kernel() {
    check_padding_modes(&gpu());
}

fn check_padding_modes(device: &Device) {
    // A single "pick the top-left neighbour" filter: out[y][x] = in_padded[y-1][x-1].
    let mut k = vec![0.0f32; 9];
    k[0] = 1.0;
    let w = from_vec(k, [1, 1, 3, 3], device);
    let x = from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3], device);
    let zero = to_vec(conv3x3(x.clone(), w.clone(), None, Padding::Zero, 1));
    assert_eq!(zero, vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
    // Reflect: row -1 is row 1, column -1 is column 1.
    let reflect = to_vec(conv3x3(x.clone(), w.clone(), None, Padding::Reflect, 1));
    assert_eq!(reflect, vec![5.0, 4.0, 5.0, 2.0, 1.0, 2.0]);
    // Up-sampled 2x first: [[1,1,2,2,3,3],[1,1,..],[4,4,5,5,6,6],[4,..]], then shifted.
    let up: Tensor<4> = conv3x3(x, w, None, Padding::Zero, 2);
    let up = to_vec(up);
    assert_eq!(&up[6..12], &[0.0, 1.0, 1.0, 2.0, 2.0, 3.0]);
    assert_eq!(&up[18..24], &[0.0, 4.0, 4.0, 5.0, 5.0, 6.0]);
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn group_norm_silu_matches_plain_ops() {
    let device = gpu();
    // [B, C, H, W], groups, SiLU
    let cases = [
        ([2, 64, 16, 16], 32, true),
        ([1, 128, 8, 8], 32, false),
        ([1, 6, 5, 3], 3, true),     // odd sizes, fewer elements than invocations
        ([3, 4, 1, 1], 1, true),     // one group, one pixel
        ([1, 32, 64, 64], 32, true), // many elements per invocation
    ];
    for (n, (shape, groups, silu)) in cases.into_iter().enumerate() {
        let seed = 1200 + 10 * n as u64;
        let x = random(shape, seed, -2.0, 3.0, &device);
        let gamma = random([shape[1]], seed + 1, 0.5, 1.5, &device);
        let beta = random([shape[1]], seed + 2, -0.5, 0.5, &device);
        let fused = to_vec(group_norm(x.clone(), gamma.clone(), beta.clone(), groups, 1e-6, silu));
        let plain = to_vec(group_norm_reference(x, gamma, beta, groups, 1e-6, silu));
        let diff = max_abs_diff(&fused, &plain);
        eprintln!("decode group_norm {shape:?} groups {groups} silu {silu}: max abs diff {diff:.2e}");
        assert!(diff <= 1e-4, "{shape:?}: max abs diff {diff}");
    }
}

/// The reference itself against the definition: zero mean, unit variance per group before the affine.
#[test]
fn group_norm_reference_normalises_each_group() {
    let device = Device::flex();
    let x = random([2, 8, 3, 3], 77, -3.0, 5.0, &device);
    let y = to_vec(group_norm_reference(x, Tensor::ones([8], &device), Tensor::zeros([8], &device), 4, 1e-6, false));
    for g in y.chunks(2 * 9) {
        let mean = g.iter().map(|v| *v as f64).sum::<f64>() / g.len() as f64;
        let var = g.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / g.len() as f64;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean} var {var}");
    }
}

#[test]
fn pixel_shuffle_follows_its_definition() {
    // Definition, on the CPU path: out[b, c, h*r + i, w*r + j] = x[b, c*r*r + i*r + j, h, w].
    let cpu = Device::flex();
    let (b, c, h, w, r) = (2, 3, 2, 5, 2);
    let x: Vec<f32> = (0..b * c * r * r * h * w).map(|v| v as f32).collect();
    let y = to_vec(pixel_shuffle(from_vec(x.clone(), [b, c * r * r, h, w], &cpu), r));
    for (e, got) in y.iter().enumerate() {
        let (ox, oy, cc, bb) = (e % (w * r), (e / (w * r)) % (h * r), (e / (w * r * h * r)) % c, e / (w * r * h * r * c));
        let ch = cc * r * r + (oy % r) * r + ox % r;
        assert_eq!(*got, x[((bb * c * r * r + ch) * h + oy / r) * w + ox / r]);
    }
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn pixel_shuffle_kernel_matches_plain_ops() {
    let device = gpu();
    for (shape, r) in [([2, 12, 5, 7], 2), ([1, 27, 4, 4], 3), ([1, 4, 1, 1], 2), ([1, 5, 3, 3], 1)] {
        let x = random(shape, 3, -1.0, 1.0, &device);
        let fused = to_vec(pixel_shuffle(x.clone(), r));
        let plain = to_vec(pixel_shuffle_reference(x, r));
        assert_eq!(fused, plain, "{shape:?} r {r}");
        eprintln!("decode pixel_shuffle {shape:?} r {r}: identical");
    }
}

/// Training the tokenizer: with autodiff inputs the decoder layers take the plain ops (no kernel
/// backward yet), so gradients exist and match.
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn autodiff_inputs_take_the_plain_ops() {
    let device = gpu();
    let x = random([1, 4, 6, 6], 40, -1.0, 1.0, &device);
    let w = random([2, 4, 3, 3], 41, -1.0, 1.0, &device).autodiff().require_grad();
    let y = conv3x3(x.clone(), w.clone(), None, Padding::Reflect, 2);
    let grads = y.sum().backward();
    let g = to_vec(w.grad(&grads).expect("weight gradient"));
    assert!(g.iter().any(|v| *v != 0.0));
    let plain = conv3x3_reference(x, w.clone().without_autodiff(), None, Padding::Reflect, 2);
    assert_eq!(plain.dims(), [1, 2, 12, 12]);
}
