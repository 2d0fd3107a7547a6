// Nearest codebook entry: one invocation per input vector, codebook tiles in workgroup memory,
// squared distance and arg-min fused, then the chosen code gathered into the second output.
// Ties go to the lowest index (strict <), as argmin does.
//
// Template values (filled by quantize.rs): d = vector length, d4 = ceil(d / 4) (vectors held as
// vec4, zero-padded), bn = vectors per workgroup (= invocations), bv = codes per tile,
// tile = bv * d4; x_load, dist = the loops over d4 unrolled by the host (software adapters cap the
// loop iterations of one invocation at about 65535 and then silently stop, and constant indices
// keep xv in registers: see attention.wgsl).
// Layout: x [N, D], codebook [V, D], indices [N] (i32), codes [N, D], all contiguous.

const D: u32 = {{ d }}u;
const D4: u32 = {{ d4 }}u;
const BN: u32 = {{ bn }}u;
const BV: u32 = {{ bv }}u;
const TILE: u32 = {{ tile }}u;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> codebook: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> codes: array<f32>;
// [n, v, workgroups along x]
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

var<workgroup> c_tile: array<vec4<f32>, TILE>;
var<workgroup> wg_v: u32;

fn load_x(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (c * 4u + e < D) {
            r[e] = x[base + c * 4u + e];
        }
    }
    return r;
}

fn load_code(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (c * 4u + e < D) {
            r[e] = codebook[base + c * 4u + e];
        }
    }
    return r;
}

@compute @workgroup_size(BN, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    // Rows beyond 65535 workgroups spill into y.
    let i = (wid.y * info[2] + wid.x) * BN + lid;
    let live = i < n;
    if (lid == 0u) {
        wg_v = info[1];
    }
    // Uniform for the barriers (a read_write buffer's values are non-uniform to WGSL).
    let v = workgroupUniformLoad(&wg_v);

    var xv: array<vec4<f32>, D4>;
    if (live) {
{{ x_load }}
    }
    var best = 3.0e38;
    var best_j = 0u;
    for (var t = 0u; t < v; t += BV) {
        let m = min(BV, v - t);
        for (var e = lid; e < m * D4; e += BN) {
            c_tile[e] = load_code((t + e / D4) * D, e % D4);
        }
        workgroupBarrier();
        // Dead invocations compute too: the loop stays uniform, tile reads stay broadcasts.
        for (var jj = 0u; jj < m; jj++) {
            let cb = jj * D4;
            var dist = 0.0;
{{ dist }}
            if (dist < best) {
                best = dist;
                best_j = t + jj;
            }
        }
        workgroupBarrier();
    }
    if (live) {
        indices[i] = i32(best_j);
        for (var d = 0u; d < D; d++) {
            codes[i * D + d] = codebook[best_j * D + d];
        }
    }
}
