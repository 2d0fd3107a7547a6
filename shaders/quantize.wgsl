// Nearest codebook entry: each invocation takes two input vectors, codebook tiles (and the
// entries' squared norms) sit in workgroup memory, distance and arg-min are fused, then the chosen
// code is gathered into the second output. The distance is |e|^2 - 2 x.e (|x|^2 is the same for
// every entry, so it is left out), the expansion the plain ops use too: one dot product per vec4,
// and each tile read serves both vectors. Ties go to the lowest index (strict <), as argmin does.
//
// Template values (filled by quantize.rs): d = vector length, d4 = ceil(d / 4) (vectors held as
// vec4, zero-padded), bn = invocations per workgroup (2 * bn vectors), bv = codes per tile,
// tile = bv * d4; x_load, dist = the loops over d4 unrolled by the host (software adapters cap the
// loop iterations of one invocation at about 65535 and then silently stop, and constant indices
// keep the vectors in registers: see attention.wgsl).
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
var<workgroup> n_tile: array<f32, BV>;
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
    let i0 = (wid.y * info[2] + wid.x) * (2u * BN) + lid;
    let i1 = i0 + BN;
    if (lid == 0u) {
        wg_v = info[1];
    }
    // Uniform for the barriers (a read_write buffer's values are non-uniform to WGSL).
    let v = workgroupUniformLoad(&wg_v);

    // 2x, so the loop subtracts a plain dot product (doubling is exact).
    var xa: array<vec4<f32>, D4>;
    var xb: array<vec4<f32>, D4>;
    if (i0 < n) {
{{ x_load_a }}
    }
    if (i1 < n) {
{{ x_load_b }}
    }
    var best0 = 3.0e38;
    var best_j0 = 0u;
    var best1 = 3.0e38;
    var best_j1 = 0u;
    for (var t = 0u; t < v; t += BV) {
        let m = min(BV, v - t);
        for (var e = lid; e < m * D4; e += BN) {
            c_tile[e] = load_code((t + e / D4) * D, e % D4);
        }
        for (var e = lid; e < m; e += BN) {
            var norm = 0.0;
            for (var c = 0u; c < D4; c++) {
                let cv = load_code((t + e) * D, c);
                norm += dot(cv, cv);
            }
            n_tile[e] = norm;
        }
        workgroupBarrier();
        // Dead invocations compute too: the loop stays uniform, tile reads stay broadcasts.
        for (var jj = 0u; jj < m; jj++) {
            let cb = jj * D4;
            var d0 = n_tile[jj];
            var d1 = d0;
{{ dist }}
            if (d0 < best0) {
                best0 = d0;
                best_j0 = t + jj;
            }
            if (d1 < best1) {
                best1 = d1;
                best_j1 = t + jj;
            }
        }
        workgroupBarrier();
    }
    if (i0 < n) {
        write(i0, best_j0);
    }
    if (i1 < n) {
        write(i1, best_j1);
    }
}

fn write(i: u32, j: u32) {
    indices[i] = i32(j);
    for (var d = 0u; d < D; d++) {
        codes[i * D + d] = codebook[j * D + d];
    }
}
