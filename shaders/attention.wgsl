// Fused scaled-dot-product attention, flash style: one invocation per query row, tiles of K and V
// in workgroup memory, online softmax (running max and sum), so no Lq x Lk matrix ever exists.
// f32 only, no subgroups: it must run on WebGPU and on software adapters.
//
// Template values (filled by attention.rs): d = head dim, d4 = ceil(d / 4) (rows are held as vec4,
// zero-padded), bq = queries per workgroup (= invocations), bk = keys per tile, tile = bk * d4,
// mask = 0 none, 1 causal, 2 windowed causal, 3 block-causal; q_load, qk_dot, acc_scale, acc_add,
// out_store = the loops over the head dimension, unrolled by the host. Unrolled because software
// adapters (llvmpipe/lavapipe) cap the loop iterations of one invocation at about 65535 and then
// silently stop; per key there is then no inner loop left. And with constant indices only, q and
// acc stay in registers (a dynamic index would put them in memory).
//
// Every mask lets a query see one contiguous key range [lo, hi), monotone in the query position;
// that is what lets a workgroup skip the tiles none of its queries can see.
//
// Layout: q [BH, Lq, D], k and v [BH, Lk, D], out [BH, Lq, D], all contiguous f32.
// Query i sits at absolute position i + q_offset in the key sequence (KV-cache decoding).

const D: u32 = {{ d }}u;
const D4: u32 = {{ d4 }}u;
const BQ: u32 = {{ bq }}u;
const BK: u32 = {{ bk }}u;
const TILE: u32 = {{ tile }}u;
const MASK: u32 = {{ mask }}u;
// Finite stand-in for -infinity: WGSL has no infinity literal and exp(-inf - -inf) would be NaN.
const NEG: f32 = -3.0e38;

// Every binding read_write: natively burn may place several tensors in one pooled buffer,
// and wgpu rejects a buffer bound both read-only and read-write in one dispatch.
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// [lq, lk, q_offset, window, bitcast(scale)]
@group(0) @binding(4) var<storage, read_write> info: array<u32>;
// Block-causal only: exclusive end of the block holding each absolute position (else one dummy word).
@group(0) @binding(5) var<storage, read_write> block_end: array<u32>;

var<workgroup> k_tile: array<vec4<f32>, TILE>;
var<workgroup> v_tile: array<vec4<f32>, TILE>;
var<workgroup> wg_range: vec2<u32>;

// Keys [lo, hi) visible from absolute position `pos`.
fn key_range(pos: u32, lk: u32, window: u32) -> vec2<u32> {
    var lo = 0u;
    var hi = lk;
    if (MASK == 1u) {
        hi = min(pos + 1u, lk);
    } else if (MASK == 2u) {
        hi = min(pos + 1u, lk);
        lo = select(0u, pos - window, pos > window);
    } else if (MASK == 3u) {
        hi = min(block_end[pos], lk);
    }
    return vec2<u32>(lo, hi);
}

// Four consecutive floats of a row from `base`, zero past the row's end (d not a multiple of 4).
fn load_q(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var x = 0u; x < 4u; x++) {
        if (c * 4u + x < D) {
            r[x] = q[base + c * 4u + x];
        }
    }
    return r;
}

fn load_k(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var x = 0u; x < 4u; x++) {
        if (c * 4u + x < D) {
            r[x] = k[base + c * 4u + x];
        }
    }
    return r;
}

fn load_v(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var x = 0u; x < 4u; x++) {
        if (c * 4u + x < D) {
            r[x] = v[base + c * 4u + x];
        }
    }
    return r;
}

@compute @workgroup_size(BQ, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lq = info[0];
    let lk = info[1];
    let q_offset = info[2];
    let window = info[3];
    let scale = bitcast<f32>(info[4]);

    let bh = wid.y;
    let q0 = wid.x * BQ; // < lq: the host launches ceil(lq / BQ) workgroups along x
    let i = q0 + lid;
    let live = i < lq;

    // The union of the workgroup's key ranges, made uniform for the barriers below (values read
    // from a read_write buffer are non-uniform to WGSL's uniformity analysis).
    if (lid == 0u) {
        let last = min(q0 + BQ, lq) - 1u;
        let first_range = key_range(q0 + q_offset, lk, window);
        let last_range = key_range(last + q_offset, lk, window);
        wg_range = vec2<u32>(first_range.x, max(first_range.x, last_range.y));
    }
    let range = workgroupUniformLoad(&wg_range);

    var qv: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, D4>;
    var mine = vec2<u32>(0u, 0u);
    if (live) {
        let base = (bh * lq + i) * D;
{{ q_load }}
        mine = key_range(i + q_offset, lk, window);
    }
    var m = NEG; // running max of the scores seen
    var l = 0.0; // running sum of exp(score - m)

    let kv_base = bh * lk * D;
    for (var t = range.x; t < range.y; t += BK) {
        let n = min(BK, range.y - t);
        // Cooperative load of keys t..t+n; the rest of the tile is never read.
        for (var e = lid; e < n * D4; e += BQ) {
            let row = kv_base + (t + e / D4) * D;
            k_tile[e] = load_k(row, e % D4);
            v_tile[e] = load_v(row, e % D4);
        }
        workgroupBarrier();
        // Every invocation walks the same keys (dead and masked ones too, with weight 0): the tile
        // addresses stay uniform, so reads are broadcasts, not per-invocation gathers.
        for (var jj = 0u; jj < n; jj++) {
            let j = t + jj;
            let kb = jj * D4;
            var qk = 0.0;
{{ qk_dot }}
            let visible = j >= mine.x && j < mine.y;
            // Online softmax, one key at a time: rescale the sums when the max grows.
            if (visible && qk > m) {
                let corr = select(0.0, exp(m - qk), m > NEG);
                l *= corr;
{{ acc_scale }}
                m = qk;
            }
            let p = select(0.0, exp(qk - m), visible);
            l += p;
{{ acc_add }}
        }
        workgroupBarrier();
    }

    if (live) {
        // A query that sees no key at all gets zeros (plain softmax would give NaN).
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let base = (bh * lq + i) * D;
{{ out_store }}
    }
}
