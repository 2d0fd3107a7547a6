// GroupNorm with the affine transform, optionally followed by SiLU, in one kernel: one workgroup per
// (sample, group) reduces the group's mean and variance in workgroup memory (two passes, for
// accuracy), then normalises, scales, shifts and activates while writing.
//
// Template values (filled by decoder.rs): wg = invocations per workgroup (a power of two),
// silu = 0/1. Layout: x and out [B, C, H, W], gamma and beta [C], contiguous f32.

const WG: u32 = {{ wg }}u;
const SILU: u32 = {{ silu }}u;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// [channels per group, H * W, groups, bitcast(eps)]
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

var<workgroup> partial: array<f32, WG>;
var<workgroup> wg_n: u32;

// Sum of `partial` over the workgroup; every invocation gets it.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cpg = info[0];
    let hw = info[1];
    let groups = info[2];
    let eps = bitcast<f32>(info[3]);
    if (lid == 0u) {
        wg_n = cpg * hw;
    }
    // Uniform loop bound for the barriers (a read_write buffer's values are non-uniform to WGSL).
    let n = workgroupUniformLoad(&wg_n);
    // The group's elements are contiguous: channels g*cpg .. (g+1)*cpg of sample b.
    let base = wid.x * n; // wid.x = b * groups + g
    let c0 = (wid.x % groups) * cpg;

    var s = 0.0;
    for (var e = lid; e < n; e += WG) {
        s += x[base + e];
    }
    let mean = workgroup_sum(lid, s) / f32(n);
    var s2 = 0.0;
    for (var e = lid; e < n; e += WG) {
        let d = x[base + e] - mean;
        s2 += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(lid, s2) / f32(n) + eps);

    for (var e = lid; e < n; e += WG) {
        let c = c0 + e / hw;
        var y = (x[base + e] - mean) * inv_std * gamma[c] + beta[c];
        if (SILU == 1u) {
            y = y / (1.0 + exp(-y));
        }
        out[base + e] = y;
    }
}
