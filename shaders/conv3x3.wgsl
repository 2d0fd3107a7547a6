// 3x3 convolution, stride 1, "same" size, for the tokenizer decoders: zero or reflect padding, with
// an optional nearest up-sampling by `up` fused in front (the convolution reads the up-sampled image
// without it ever being written).
//
// Workgroup: an 8 x 8 block of output pixels (one invocation each) for COB = 8 output channels.
// Input channels go in chunks of CT: the chunk's (8 + 2) x (8 + 2) input patch (halo included,
// padding and up-sampling applied while loading) and its COB x CT x 9 weights sit in workgroup memory.
//
// Template values (filled by decoder.rs): ct = input channels per chunk, up = 1 or 2,
// reflect = 0 zero padding / 1 reflect padding, taps = the 9 taps of one input channel, unrolled by
// the host (software adapters cap an invocation's loop iterations at about 65535).
// Layout: x [B, Cin, H, W], w [Cout, Cin, 3, 3], bias [Cout], out [B, Cout, H*up, W*up], contiguous f32.

const CT: u32 = {{ ct }}u;
const UP: u32 = {{ up }}u;
const REFLECT: u32 = {{ reflect }}u;
const COB: u32 = 8u;
const TS: u32 = 8u;       // output tile side
const PS: u32 = 10u;      // patch side (tile + halo)
const PATCH: u32 = CT * PS * PS;
const WTILE: u32 = CT * 9u * 2u; // vec4 pairs: COB = 8 output channels per (channel, tap)

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// [cin, h, w, cout, channel blocks]
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

var<workgroup> x_tile: array<f32, PATCH>;
var<workgroup> w_tile: array<vec4<f32>, WTILE>;
var<workgroup> wg_cin: u32;

// Up-sampled coordinate `u` (may lie outside [0, n)) to a source index, or -1 for zero padding.
fn source_index(u: i32, n: i32) -> i32 {
    var c = u;
    if (REFLECT == 1u) {
        if (c < 0) { c = -c; }
        if (c >= n) { c = 2 * (n - 1) - c; }
        // Only positions of dead invocations (past the image) can still be outside: clamp them.
        c = clamp(c, 0, n - 1);
    } else if (c < 0 || c >= n) {
        return -1;
    }
    return c / i32(UP);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let h = info[1];
    let wd = info[2];
    let cout = info[3];
    let blocks = info[4];
    if (lid == 0u) {
        wg_cin = info[0];
    }
    // Uniform for the barriers (a read_write buffer's values are non-uniform to WGSL).
    let cin = workgroupUniformLoad(&wg_cin);

    let ho = h * UP;
    let wo = wd * UP;
    let b = wid.z / blocks;
    let co0 = (wid.z % blocks) * COB;
    let oy0 = wid.y * TS;
    let ox0 = wid.x * TS;
    let ly = lid3.y;
    let lx = lid3.x;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < cin; c0 += CT) {
        // Input patch of channels c0..c0+CT, padding and up-sampling applied.
        for (var e = lid; e < PATCH; e += 64u) {
            let c = c0 + e / (PS * PS);
            let py = (e / PS) % PS;
            let px = e % PS;
            let sy = source_index(i32(oy0 + py) - 1, i32(ho));
            let sx = source_index(i32(ox0 + px) - 1, i32(wo));
            var val = 0.0;
            if (c < cin && sy >= 0 && sx >= 0) {
                val = x[((b * cin + c) * h + u32(sy)) * wd + u32(sx)];
            }
            x_tile[e] = val;
        }
        // Weights [co0..co0+8) x [c0..c0+CT) x 9 taps, as (channel, tap) -> two vec4 of outputs.
        for (var e = lid; e < CT * 9u * COB; e += 64u) {
            let o = e % COB;
            let tap = (e / COB) % 9u;
            let c = e / (COB * 9u);
            var val = 0.0;
            if (co0 + o < cout && c0 + c < cin) {
                val = w[((co0 + o) * cin + c0 + c) * 9u + tap];
            }
            w_tile[(c * 9u + tap) * 2u + o / 4u][o % 4u] = val;
        }
        workgroupBarrier();
        for (var c = 0u; c < CT; c++) {
            let pb = c * PS * PS + ly * PS + lx;
            let wb = c * 9u * 2u;
{{ taps }}
        }
        workgroupBarrier();
    }

    let oy = oy0 + ly;
    let ox = ox0 + lx;
    if (oy < ho && ox < wo) {
        for (var o = 0u; o < COB; o++) {
            let co = co0 + o;
            if (co < cout) {
                var a = acc0[o % 4u];
                if (o >= 4u) { a = acc1[o % 4u]; }
                out[((b * cout + co) * ho + oy) * wo + ox] = a + bias[co];
            }
        }
    }
}
