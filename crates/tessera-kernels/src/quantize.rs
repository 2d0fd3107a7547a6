//! Nearest codebook entry (`shaders/quantize.wgsl`) and its plain-burn twin.
//!
//! Euclidean distance. For cosine codebooks (VAR's `using_znorm`), l2-normalise both the vectors and
//! the codebook first: on unit vectors the nearest entry is the one of largest cosine.

use burn::backend::Dispatch;
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::tensor::{DType, Int, Shape, Tensor};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use crate::ops::{KernelOps, kernels_enabled};

/// Longest vectors the kernel takes (private registers per invocation); longer run on plain ops.
pub const MAX_DIM: usize = 512;
/// Invocations per workgroup (two vectors each).
const BN: u32 = 64;
/// vec4s of codebook per tile: 14,400 bytes, plus at most 256 norms and the 4 bytes of `wg_v`,
/// within 16 KiB, WebGPU's default workgroup storage limit.
const TILE_VEC4: u32 = 900;
/// Most workgroups along one dispatch axis (WebGPU's default limit).
const MAX_GROUPS: u32 = 65535;

/// Nearest entry of `codebook` `[V, D]` for every row of `x` `[N, D]`: the indices `[N]` and the
/// entries themselves `[N, D]`. Ties go to the lowest index.
///
/// On a wgpu device (without autodiff, and unless [`crate::set_reference_ops`] is on) the fused
/// kernel runs; everywhere else [`quantize_reference`] (whose codes keep the codebook's gradient).
pub fn quantize(x: Tensor<2>, codebook: Tensor<2>) -> (Tensor<1, Int>, Tensor<2>) {
    let [_, d] = check_shapes(&x, &codebook);
    let device = x.device();
    let fits = d <= MAX_DIM && x.dtype() == DType::F32 && codebook.dtype() == DType::F32;
    if !fits || !kernels_enabled(&device) {
        return quantize_reference(x, codebook);
    }
    let (idx, codes) = Dispatch::nearest_code(x.into_dispatch(), codebook.into_dispatch());
    let idx = Tensor::<1, Int>::from_dispatch(idx);
    // The kernel writes i32; hand back the device's own int type.
    let int_dtype = device.settings().int_dtype;
    let idx = if idx.dtype() == DType::from(int_dtype) { idx } else { idx.cast(int_dtype) };
    (idx, Tensor::from_dispatch(codes))
}

/// [`quantize`] with plain burn ops, as the tokenizers did it: `|x|² + |e|² − 2 x·e`, argmin, gather.
pub fn quantize_reference(x: Tensor<2>, codebook: Tensor<2>) -> (Tensor<1, Int>, Tensor<2>) {
    let [n, _] = x.dims();
    let [v, _] = codebook.dims();
    let xx = x.clone().square().sum_dim(1); // [N, 1]
    let ee = codebook.clone().square().sum_dim(1).reshape([1, v]); // [1, V]
    let dist = (xx + ee) - x.matmul(codebook.clone().transpose()) * 2.0;
    let idx = dist.argmin(1).reshape([n]);
    let codes = codebook.select(0, idx.clone());
    (idx, codes)
}

fn check_shapes(x: &Tensor<2>, codebook: &Tensor<2>) -> [usize; 2] {
    let [n, d] = x.dims();
    let [v, cd] = codebook.dims();
    assert_eq!(cd, d, "codebook entries have length {cd}, the vectors {d}");
    assert!(v >= 1, "empty codebook");
    [n, d]
}

/// One instantiation of `shaders/quantize.wgsl`.
#[derive(Debug)]
struct QuantizeKernel {
    d: u32,
    bv: u32,
}

impl QuantizeKernel {
    fn new(d: u32) -> Self {
        Self { d, bv: (TILE_VEC4 / d.div_ceil(4)).clamp(1, 256) }
    }
}

impl KernelSource for QuantizeKernel {
    fn source(&self) -> SourceTemplate {
        let d4 = self.d.div_ceil(4);
        // The distance over the vector, unrolled: no inner loop per code.
        // The distance over the vector, unrolled: no inner loop per code.
        let dist = (0..d4)
            .map(|c| format!("            {{ let cv = c_tile[cb + {c}u]; d0 -= dot(xa[{c}], cv); d1 -= dot(xb[{c}], cv); }}"))
            .collect::<Vec<_>>()
            .join("\n");
        let x_load = |name: &str, row: &str| {
            (0..d4).map(|c| format!("        {name}[{c}] = 2.0 * load_x({row} * D, {c}u);")).collect::<Vec<_>>().join("\n")
        };
        SourceTemplate::new(include_str!("../../../shaders/quantize.wgsl"))
            .register("d", self.d.to_string())
            .register("d4", d4.to_string())
            .register("bn", BN.to_string())
            .register("bv", self.bv.to_string())
            .register("tile", (self.bv * d4).to_string())
            .register("dist", dist)
            .register("x_load_a", x_load("xa", "i0"))
            .register("x_load_b", x_load("xb", "i1"))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.d, BN, self.bv))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// Launches the kernel on cubecl tensors (called by the backend extension).
pub(crate) fn launch(x: CubeTensor, codebook: CubeTensor) -> (CubeTensor, CubeTensor) {
    let (x, codebook) = (into_contiguous(x), into_contiguous(codebook));
    let (n, d) = (x.meta.shape()[0], x.meta.shape()[1]);
    let v = codebook.meta.shape()[0];
    let client = x.client.clone();
    let idx_buf = client.empty(n.max(1) * DType::I32.size());
    let idx = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::from([n]), idx_buf, DType::I32);
    let codes_buf = client.empty((n * d).max(1) * x.dtype.size());
    let codes = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::from([n, d]), codes_buf, x.dtype);
    if n == 0 || d == 0 {
        return (idx, codes);
    }
    let groups = (n as u32).div_ceil(2 * BN);
    let (gx, gy) = if groups <= MAX_GROUPS { (groups, 1) } else { (MAX_GROUPS, groups.div_ceil(MAX_GROUPS)) };
    let info = [n as u32, v as u32, gx];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    let d = d as u32;
    let kernel = QuantizeKernel::new(d);
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(BN))),
        CubeCount::Static(gx, gy, 1),
        KernelArguments::new().with_buffers(vec![
            x.handle.clone().binding(),
            codebook.handle.clone().binding(),
            idx.handle.clone().binding(),
            codes.handle.clone().binding(),
            info.binding(),
        ]),
    );
    (idx, codes)
}
