// 3x3 convolution, stride 1, "same" size, for the tokenizer decoders: zero or reflect padding, with
// an optional nearest up-sampling by `up` fused in front (the convolution reads the up-sampled image
// without it ever being written).
//
// Workgroup: 8 x 8 invocations, each computing PX = 4 neighbouring output pixels of one row for
// COB = 8 output channels, so a 32 x 8 output tile. Input channels go in chunks of CT: the chunk's
// (32 + 2) x (8 + 2) input patch (halo included, padding and up-sampling applied while loading) and
// its COB x CT x 9 weights sit in workgroup memory. Four pixels per invocation let each weight read
// serve four pixels and each patch row read serve three taps (a third of the memory reads per
// multiply-add of one pixel per invocation).
//
// Template values (filled by decoder.rs): ct = input channels per chunk, up = 1 or 2,
// reflect = 0 zero padding / 1 reflect padding, taps = the 9 taps x 4 pixels of one input channel,
// unrolled by the host (software adapters cap an invocation's loop iterations at about 65535).
// Layout: x [B, Cin, H, W], w [Cout, Cin, 3, 3], bias [Cout], out [B, Cout, H*up, W*up], contiguous f32.

const CT: u32 = {{ ct }}u;
const UP: u32 = {{ up }}u;
const REFLECT: u32 = {{ reflect }}u;
const COB: u32 = 8u;
const PX: u32 = 4u;       // output pixels per invocation, along x
const TSX: u32 = 32u;     // output tile width (8 invocations x PX)
const TSY: u32 = 8u;      // output tile height
const PSX: u32 = 34u;     // patch width (tile + halo)
const PSY: u32 = 10u;     // patch height
const PATCH: u32 = CT * PSX * PSY;
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
    let oy0 = wid.y * TSY;
    let ox0 = wid.x * TSX;
    let ly = lid3.y;
    let lx = lid3.x;

    // a<p><half>: pixel p, output channels co0 + 4 * half .. + 4.
    var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < cin; c0 += CT) {
        // Input patch of channels c0..c0+CT, padding and up-sampling applied.
        for (var e = lid; e < PATCH; e += 64u) {
            let c = c0 + e / (PSX * PSY);
            let py = (e / PSX) % PSY;
            let px = e % PSX;
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
            let pb = c * PSX * PSY + ly * PSX + lx * PX;
            let wb = c * 9u * 2u;
{{ taps }}
        }
        workgroupBarrier();
    }

    let oy = oy0 + ly;
    let ox = ox0 + lx * PX;
    if (oy < ho) {
        store(b, co0, cout, ho, wo, oy, ox, a00, a01);
        store(b, co0, cout, ho, wo, oy, ox + 1u, a10, a11);
        store(b, co0, cout, ho, wo, oy, ox + 2u, a20, a21);
        store(b, co0, cout, ho, wo, oy, ox + 3u, a30, a31);
    }
}

// Writes one pixel's COB output channels (plus bias), skipping pixels and channels past the end.
fn store(b: u32, co0: u32, cout: u32, ho: u32, wo: u32, oy: u32, ox: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (ox >= wo) {
        return;
    }
    for (var o = 0u; o < COB; o++) {
        let co = co0 + o;
        if (co < cout) {
            var a = lo[o % 4u];
            if (o >= 4u) { a = hi[o % 4u]; }
            out[((b * cout + co) * ho + oy) * wo + ox] = a + bias[co];
        }
    }
}
