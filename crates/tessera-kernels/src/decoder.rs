//! Tokenizer-decoder layers as WGSL kernels, with plain-burn twins: the 3x3 convolution (zero or
//! reflect padding) with an optional nearest 2x up-sampling fused in front (`shaders/conv3x3.wgsl`),
//! GroupNorm fused with SiLU (`shaders/group_norm.wgsl`) and pixel shuffle (`shaders/pixel_shuffle.wgsl`).
//!
//! Inference only: under autodiff (training the tokenizer) the plain ops run, since the kernel has
//! no backward.

use burn::backend::wgpu::{CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::activation::silu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{DType, Shape, Tensor};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use crate::attention::dims4;
use crate::ops::kernels_enabled;

/// Input channels per workgroup-memory chunk.
const CT: u32 = 8;
/// Output channels per workgroup (fixed in the shader).
const COB: u32 = 8;
/// Output tile width of one workgroup (8 invocations x 4 pixels, fixed in the shader).
const CONV_TILE_X: u32 = 32;

/// How a 3x3 convolution sees past the image's edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Zero,
    /// Mirror without repeating the edge (`PadMode::Reflect`, PyTorch's `reflect`).
    Reflect,
}

/// The decoder kernels' entry points (cubecl only; callers route everything else to the twins).
#[backend_extension(Cube)]
pub trait DecoderOps: Backend {
    /// See [`conv3x3`]; `reflect` and `up` are the shader's switches.
    fn conv3x3_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        reflect: bool,
        up: u32,
    ) -> FloatTensor<Self>;

    /// See [`group_norm`].
    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: u32,
        eps: f32,
        silu: bool,
    ) -> FloatTensor<Self>;

    /// See [`pixel_shuffle`].
    fn pixel_shuffle_fused(x: FloatTensor<Self>, r: u32) -> FloatTensor<Self>;
}

impl DecoderOps for CubeBackend {
    fn conv3x3_fused(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, reflect: bool, up: u32) -> CubeTensor {
        launch_conv3x3(x, weight, bias, reflect, up)
    }

    fn group_norm_fused(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, groups: u32, eps: f32, silu: bool) -> CubeTensor {
        launch_group_norm(x, gamma, beta, groups, eps, silu)
    }

    fn pixel_shuffle_fused(x: CubeTensor, r: u32) -> CubeTensor {
        launch_pixel_shuffle(x, r)
    }
}

/// Depth to space (PyTorch's `pixel_shuffle`): `[B, C·r², H, W]` → `[B, C, H·r, W·r]`.
///
/// On a wgpu device without autodiff (unless [`crate::set_reference_ops`] is on) one gather kernel
/// runs; elsewhere [`pixel_shuffle_reference`].
pub fn pixel_shuffle(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [b, c, h, _] = x.dims();
    assert!(r >= 1 && c % (r * r) == 0, "{c} channels are not a multiple of r² = {}", r * r);
    // Output rows and images × channels are dispatch axes (65535 at most by WebGPU's default limits).
    let fits = h * r <= 65535 && b * c / (r * r) <= 65535;
    if !fits || x.dtype() != DType::F32 || x.is_autodiff() || !kernels_enabled(&x.device()) {
        return pixel_shuffle_reference(x, r);
    }
    Tensor::from_dispatch(Dispatch::pixel_shuffle_fused(x.into_dispatch(), r as u32))
}

/// [`pixel_shuffle`] with plain burn ops (reshape, permute, reshape).
pub fn pixel_shuffle_reference(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let c = c / (r * r);
    x.reshape([b, c, r, r, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, h * r, w * r])
}

/// GroupNorm over `groups` groups of channels of `x` `[B, C, H, W]` (biased variance, `eps` inside
/// the square root, per-channel `gamma` and `beta`), then SiLU if `silu`: the decoders'
/// `Normalize` + `nonlinearity` pair as one pass over the data.
///
/// On a wgpu device without autodiff (unless [`crate::set_reference_ops`] is on) one fused kernel
/// runs; elsewhere [`group_norm_reference`].
pub fn group_norm(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, groups: usize, eps: f32, silu: bool) -> Tensor<4> {
    let [b, c, _, _] = x.dims();
    assert!(groups >= 1 && c % groups == 0, "{c} channels do not split into {groups} groups");
    assert_eq!(gamma.dims(), [c]);
    assert_eq!(beta.dims(), [c]);
    let device = x.device();
    let fits = [x.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3] && b * groups <= 65535;
    if !fits || x.is_autodiff() || gamma.is_autodiff() || beta.is_autodiff() || !kernels_enabled(&device) {
        return group_norm_reference(x, gamma, beta, groups, eps, silu);
    }
    Tensor::from_dispatch(Dispatch::group_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        groups as u32,
        eps,
        silu,
    ))
}

/// [`group_norm`] with plain burn ops.
pub fn group_norm_reference(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, groups: usize, eps: f32, silu_after: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let g = x.reshape([b, groups, (c / groups) * h * w]);
    let mean = g.clone().mean_dim(2);
    let centred = g - mean;
    let var = centred.clone().square().mean_dim(2);
    let y = (centred / (var + eps as f64).sqrt()).reshape([b, c, h, w]);
    let y = y * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
    if silu_after { silu(y) } else { y }
}

/// 3x3 convolution, stride 1, output the size of its input after an optional nearest up-sampling by
/// `upsample` (1 or 2): `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, 3, 3]` → `[B, Cout, H·up, W·up]`.
///
/// On a wgpu device without autodiff (unless [`crate::set_reference_ops`] is on) one fused kernel
/// runs; elsewhere [`conv3x3_reference`].
pub fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, padding: Padding, upsample: usize) -> Tensor<4> {
    let [b, _, h, w] = check(&x, &weight, padding, upsample);
    let cout = weight.dims()[0];
    let device = x.device();
    let fits = [x.dtype(), weight.dtype()] == [DType::F32; 2]
        && b * (cout as u32).div_ceil(COB) as usize <= 65535
        && (h * upsample).div_ceil(8) <= 65535
        && ((w * upsample) as u32).div_ceil(CONV_TILE_X) <= 65535;
    let tracked = x.is_autodiff() || weight.is_autodiff() || bias.as_ref().is_some_and(|b| b.is_autodiff());
    if !fits || tracked || !kernels_enabled(&device) {
        return conv3x3_reference(x, weight, bias, padding, upsample);
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([cout], &device));
    Tensor::from_dispatch(Dispatch::conv3x3_fused(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        padding == Padding::Reflect,
        upsample as u32,
    ))
}

/// [`conv3x3`] with plain burn ops: repeat-based nearest up-sampling, `pad`, `conv2d`.
pub fn conv3x3_reference(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, padding: Padding, upsample: usize) -> Tensor<4> {
    let [b, c, h, w] = check(&x, &weight, padding, upsample);
    let x = if upsample == 1 {
        x
    } else {
        x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, upsample, w, upsample]).reshape([b, c, h * upsample, w * upsample])
    };
    match padding {
        Padding::Zero => conv2d(x, weight, bias, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)),
        Padding::Reflect => {
            let x = x.pad((1, 1, 1, 1), PadMode::Reflect);
            conv2d(x, weight, bias, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
        }
    }
}

fn check(x: &Tensor<4>, weight: &Tensor<4>, padding: Padding, upsample: usize) -> [usize; 4] {
    let [b, c, h, w] = x.dims();
    let [_, wc, kh, kw] = weight.dims();
    assert!(wc == c && kh == 3 && kw == 3, "weight {:?} is not [Cout, {c}, 3, 3]", weight.dims());
    assert!(upsample == 1 || upsample == 2, "up-sampling by {upsample}: only 1 and 2 are supported");
    if padding == Padding::Reflect {
        assert!(h * upsample >= 2 && w * upsample >= 2, "reflect padding needs at least 2 pixels per side");
    }
    [b, c, h, w]
}

/// One instantiation of `shaders/conv3x3.wgsl`.
#[derive(Debug)]
struct Conv3x3Kernel {
    up: u32,
    reflect: bool,
}

impl KernelSource for Conv3x3Kernel {
    fn source(&self) -> SourceTemplate {
        // Per patch row dy: its six values r0..r5 serve the three taps (dy, dx) of all four pixels
        // (pixel p reads r[p + dx]); each tap's two weight vec4s serve the four pixels.
        let mut taps = Vec::new();
        for dy in 0..3u32 {
            let row = (0..6u32).map(|i| format!("let r{i} = x_tile[pb + {}u];", dy * 34 + i)).collect::<Vec<_>>().join(" ");
            taps.push(format!("            {{ {row}"));
            for dx in 0..3u32 {
                let tap = dy * 3 + dx;
                let pixels = (0..4u32).map(|p| format!("a{p}0 += r{r} * w0; a{p}1 += r{r} * w1;", r = p + dx)).collect::<Vec<_>>().join(" ");
                taps.push(format!("              {{ let w0 = w_tile[wb + {}u]; let w1 = w_tile[wb + {}u]; {pixels} }}", tap * 2, tap * 2 + 1));
            }
            taps.push("            }".to_string());
        }
        let taps = taps.join("\n");
        SourceTemplate::new(include_str!("../../../shaders/conv3x3.wgsl"))
            .register("ct", CT.to_string())
            .register("up", self.up.to_string())
            .register("reflect", u32::from(self.reflect).to_string())
            .register("taps", taps)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((CT, self.up, self.reflect))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

fn launch_conv3x3(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, reflect: bool, up: u32) -> CubeTensor {
    let (x, weight, bias) = (into_contiguous(x), into_contiguous(weight), into_contiguous(bias));
    let [b, cin, h, w] = dims4(x.meta.shape());
    let cout = weight.meta.shape()[0];
    let (ho, wo) = (h * up as usize, w * up as usize);
    let client = x.client.clone();
    let out_buf = client.empty((b * cout * ho * wo).max(1) * x.dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::from([b, cout, ho, wo]), out_buf, x.dtype);
    if b * cout * ho * wo == 0 {
        return out;
    }
    let blocks = (cout as u32).div_ceil(COB);
    let info = [cin as u32, h as u32, w as u32, cout as u32, blocks];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    client.launch(
        Box::new(SourceKernel::new(Conv3x3Kernel { up, reflect }, CubeDim::new_2d(8, 8))),
        CubeCount::Static((wo as u32).div_ceil(CONV_TILE_X), (ho as u32).div_ceil(8), b as u32 * blocks),
        KernelArguments::new().with_buffers(vec![
            x.handle.clone().binding(),
            weight.handle.clone().binding(),
            bias.handle.clone().binding(),
            out.handle.clone().binding(),
            info.binding(),
        ]),
    );
    out
}

/// Invocations per GroupNorm workgroup.
const GN_WG: u32 = 256;

/// One instantiation of `shaders/group_norm.wgsl`.
#[derive(Debug)]
struct GroupNormKernel {
    silu: bool,
}

impl KernelSource for GroupNormKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../../shaders/group_norm.wgsl"))
            .register("wg", GN_WG.to_string())
            .register("silu", u32::from(self.silu).to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((GN_WG, self.silu))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

fn launch_group_norm(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, groups: u32, eps: f32, silu: bool) -> CubeTensor {
    let (x, gamma, beta) = (into_contiguous(x), into_contiguous(gamma), into_contiguous(beta));
    let [b, c, h, w] = dims4(x.meta.shape());
    let client = x.client.clone();
    let out_buf = client.empty((b * c * h * w).max(1) * x.dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), x.meta.shape().clone(), out_buf, x.dtype);
    if b * c * h * w == 0 {
        return out;
    }
    let info = [c as u32 / groups, (h * w) as u32, groups, eps.to_bits()];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    client.launch(
        Box::new(SourceKernel::new(GroupNormKernel { silu }, CubeDim::new_1d(GN_WG))),
        CubeCount::Static(b as u32 * groups, 1, 1),
        KernelArguments::new().with_buffers(vec![
            x.handle.clone().binding(),
            gamma.handle.clone().binding(),
            beta.handle.clone().binding(),
            out.handle.clone().binding(),
            info.binding(),
        ]),
    );
    out
}

/// Invocations per pixel-shuffle workgroup (one output row segment).
const PS_WG: u32 = 64;

/// One instantiation of `shaders/pixel_shuffle.wgsl`.
#[derive(Debug)]
struct PixelShuffleKernel {
    r: u32,
}

impl KernelSource for PixelShuffleKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../../shaders/pixel_shuffle.wgsl")).register("r", self.r.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.r)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

fn launch_pixel_shuffle(x: CubeTensor, r: u32) -> CubeTensor {
    let x = into_contiguous(x);
    let [b, c, h, w] = dims4(x.meta.shape());
    let ru = r as usize;
    let shape = [b, c / (ru * ru), h * ru, w * ru];
    let total = shape.iter().product::<usize>();
    let client = x.client.clone();
    let out_buf = client.empty(total.max(1) * x.dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::from(shape), out_buf, x.dtype);
    if total == 0 {
        return out;
    }
    let info = [h as u32, w as u32];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    client.launch(
        Box::new(SourceKernel::new(PixelShuffleKernel { r }, CubeDim::new_1d(PS_WG))),
        CubeCount::Static((shape[3] as u32).div_ceil(PS_WG), shape[2] as u32, (shape[0] * shape[1]) as u32),
        KernelArguments::new().with_buffers(vec![x.handle.clone().binding(), out.handle.clone().binding(), info.binding()]),
    );
    out
}
