//! PyTorch-exact image resizes, in plain burn tensor ops.
//!
//! VAR's quantizer moves feature maps between scales with `F.interpolate`: `mode='area'` down to
//! each token map and `mode='bicubic'` back up to the latent size (official `models/quant.py`);
//! its VAE decoder upsamples with `mode='nearest'` (official `models/basic_vae.py`). These are the
//! reference twins of the WGSL kernels that will replace them: each resize is a pair of
//! interpolation matrices built on the CPU (a few hundred floats) and applied with two matmuls, one
//! per axis, which is exact for both modes because both are separable.
//!
//! Semantics (PyTorch 2.4, `align_corners=False`, no antialias):
//! - area = `adaptive_avg_pool2d`: output cell `i` averages input `[floor(i*in/out), ceil((i+1)*in/out))`;
//!   windows overlap when `in/out` is not an integer (16 → 13, 16 → 10, 16 → 6 …).
//! - bicubic: source coordinate `src = in/out * (dst + 0.5) - 0.5`, computed in f32 as PyTorch does;
//!   `x0 = floor(src)`, `t = src - x0`; Keys kernel with `A = -0.75` over taps `x0-1 ..= x0+2`, each
//!   clamped to `[0, in-1]`.
//! - nearest ×2: output `(y, x)` reads input `(y/2, x/2)`.
//!
//! No readback: the matrices are uploaded, never read, so this runs in the browser.

use burn::prelude::*;

/// `F.interpolate(x, size=out_hw, mode='area')`, i.e. `adaptive_avg_pool2d`.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, out_hw[0], out_hw[1]]`
pub fn resize_area(x: Tensor<4>, out_hw: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == out_hw {
        return x;
    }
    let device = x.device();
    let rows = matrix_t(area_matrix(h, out_hw[0]), h, out_hw[0], &device);
    let cols = matrix_t(area_matrix(w, out_hw[1]), w, out_hw[1], &device);
    apply_separable(x, rows, cols)
}

/// `F.interpolate(x, size=out_hw, mode='bicubic', align_corners=False)`.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, out_hw[0], out_hw[1]]`
pub fn resize_bicubic(x: Tensor<4>, out_hw: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let rows = matrix_t(bicubic_matrix(h, out_hw[0]), h, out_hw[0], &device);
    let cols = matrix_t(bicubic_matrix(w, out_hw[1]), w, out_hw[1], &device);
    apply_separable(x, rows, cols)
}

/// `F.interpolate(x, scale_factor=2, mode='nearest')` (the VAE decoder's `Upsample2x`).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, 2H, 2W]`
pub fn upsample_nearest2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// Area-resize weights, row-major `[out, in]`: row `i` holds `1/len` over its window.
pub fn area_matrix(input: usize, output: usize) -> Vec<f32> {
    assert!(input > 0 && output > 0, "area resize of an empty axis");
    let mut m = vec![0.0f32; output * input];
    for i in 0..output {
        let start = i * input / output;
        let end = ((i + 1) * input).div_ceil(output);
        let weight = 1.0 / (end - start) as f32;
        for j in start..end {
            m[i * input + j] = weight;
        }
    }
    m
}

/// Bicubic-resize weights, row-major `[out, in]` (PyTorch's `upsample_bicubic2d`, A = -0.75).
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    assert!(input > 0 && output > 0, "bicubic resize of an empty axis");
    // f32 throughout, as PyTorch's `opmath_t` for float: `area_pixel_compute_scale`,
    // `area_pixel_compute_source_index(cubic=true)`, `guard_index_and_lambda`,
    // `get_cubic_upsample_coefficients` (aten/src/ATen/native/UpSample.h).
    let scale = input as f32 / output as f32;
    let mut m = vec![0.0f32; output * input];
    for i in 0..output {
        let src = scale * (i as f32 + 0.5) - 0.5;
        let x0 = (src.floor() as i64).min(input as i64 - 1);
        let t = (src - x0 as f32).clamp(0.0, 1.0);
        for (k, weight) in cubic_coefficients(t).into_iter().enumerate() {
            let j = (x0 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[i * input + j] += weight;
        }
    }
    m
}

/// Keys' cubic convolution weights of the taps `x0-1, x0, x0+1, x0+2` for fraction `t`.
fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    // |x| <= 1 and 1 < |x| < 2 pieces, written as PyTorch writes them (same f32 rounding).
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Uploads a row-major `[out, in]` matrix as its transpose `[in, out]`, ready to right-multiply.
fn matrix_t(m: Vec<f32>, input: usize, output: usize, device: &Device) -> Tensor<2> {
    let mut t = vec![0.0f32; input * output];
    for i in 0..output {
        for j in 0..input {
            t[j * output + i] = m[i * input + j];
        }
    }
    Tensor::from_data(TensorData::new(t, [input, output]), device)
}

/// `rows_t`: `[H, OH]`, `cols_t`: `[W, OW]`; `[B, C, H, W]` → `[B, C, OH, OW]`.
fn apply_separable(x: Tensor<4>, rows_t: Tensor<2>, cols_t: Tensor<2>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let [_, oh] = rows_t.dims();
    let [_, ow] = cols_t.dims();
    let x = x.reshape([b * c * h, w]).matmul(cols_t); // [BCH, OW]
    let x = x.reshape([b * c, h, ow]).swap_dims(1, 2); // [BC, OW, H]
    let x = x.reshape([b * c * ow, h]).matmul(rows_t); // [BC·OW, OH]
    x.reshape([b * c, ow, oh])
        .swap_dims(1, 2)
        .reshape([b, c, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn area_windows_overlap_when_the_ratio_is_not_an_integer() {
        // 16 → 13: cell 0 covers [0, 2), cell 1 covers [1, 3): input 1 is shared.
        let m = area_matrix(16, 13);
        assert_eq!(&m[0..3], &[0.5, 0.5, 0.0]);
        assert_eq!(&m[16..19], &[0.0, 0.5, 0.5]);
        for row in m.chunks(16) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn bicubic_rows_sum_to_one_and_same_size_is_identity() {
        for (i, o) in [(1, 16), (3, 16), (13, 16), (16, 10), (24, 32)] {
            for row in bicubic_matrix(i, o).chunks(i) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{i} -> {o}");
            }
        }
        let m = bicubic_matrix(5, 5);
        for (k, v) in m.iter().enumerate() {
            assert_eq!(*v, if k % 6 == 0 { 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn nearest2x_repeats_each_pixel_in_a_2x2_block() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let y = values(upsample_nearest2x(x));
        assert_eq!(
            y,
            vec![
                1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.
            ]
        );
    }

    #[test]
    fn area_of_a_constant_map_is_that_constant_at_every_size() {
        let device = Device::flex();
        let x = Tensor::<4>::full([2, 3, 16, 16], 0.75, &device);
        for out in [1, 2, 3, 5, 6, 10, 13] {
            for v in values(resize_area(x.clone(), [out, out])) {
                assert!((v - 0.75).abs() < 1e-6);
            }
        }
    }
}
