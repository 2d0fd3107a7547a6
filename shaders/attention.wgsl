// Fused scaled-dot-product attention with an online softmax (running max and sum), so no Lq x Lk
// matrix ever exists. f32 only, no subgroups: it must run on WebGPU and on software adapters.
//
// Each invocation owns QPI consecutive queries of one (batch, head) row and walks their keys once:
// every key and value row it reads is used by all QPI queries. That reuse is what makes it fast on
// software adapters, where every load from memory (storage or workgroup alike) inside a loop is
// a per-lane loop of scalar loads (llvmpipe), so loads, not multiply-adds, set the time. Keys are
// read straight from the storage buffer: invocations of one workgroup walk the same rows at the
// same time, so on a GPU the reads are broadcasts served by the cache, and no barriers are needed.
//
// Template values (filled by attention.rs): d = head dim, d4 = ceil(d / 4) (rows are held as vec4,
// zero-padded), qpi = queries per invocation, wg = invocations per workgroup, mask = 0 none,
// 1 causal, 2 windowed causal, 3 block-causal; kv_elem and the load_k/load_v bodies read rows as
// vec4 when d is a multiple of 4 and as single floats otherwise; q_load, k_read, scores, update,
// v_read, acc_add, out_store = the loops over the head dimension and the queries, unrolled by the
// host. Unrolled because software adapters cap the loop iterations of one invocation at about 65535
// and then silently stop; and with constant indices only, q and acc stay in registers.
//
// Every mask lets a query see one contiguous key range [lo, hi), monotone in the query position, so
// an invocation's keys are [lo of its first query, hi of its last) and each query masks the rest.
//
// Layout: q [BH, Lq, D], k and v [BH, Lk, D], out [BH, Lq, D], all contiguous f32.
// Query i sits at absolute position i + q_offset in the key sequence (KV-cache decoding).

const D: u32 = {{ d }}u;
const D4: u32 = {{ d4 }}u;
const QPI: u32 = {{ qpi }}u;
const MASK: u32 = {{ mask }}u;
// Finite stand-in for -infinity: WGSL has no infinity literal and exp(-inf - -inf) would be NaN.
const NEG: f32 = -3.0e38;

// Every binding read_write: natively burn may place several tensors in one pooled buffer,
// and wgpu rejects a buffer bound both read-only and read-write in one dispatch.
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<{{ kv_elem }}>;
@group(0) @binding(2) var<storage, read_write> v: array<{{ kv_elem }}>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// [lq, lk, q_offset, window, bitcast(scale), bh, invocations per grid row]
@group(0) @binding(4) var<storage, read_write> info: array<u32>;
// Block-causal only: exclusive end of the block holding each absolute position (else one dummy word).
@group(0) @binding(5) var<storage, read_write> block_end: array<u32>;

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

// Four consecutive floats of a q row from `base`, zero past the row's end (d not a multiple of 4).
fn load_q(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var x = 0u; x < 4u; x++) {
        if (c * 4u + x < D) {
            r[x] = q[base + c * 4u + x];
        }
    }
    return r;
}

// Chunk c (four floats) of the key or value row that starts at float `base`.
fn load_k(base: u32, c: u32) -> vec4<f32> {
{{ load_k }}
}

fn load_v(base: u32, c: u32) -> vec4<f32> {
{{ load_v }}
}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let lq = info[0];
    let lk = info[1];
    let q_offset = info[2];
    let window = info[3];
    let scale = bitcast<f32>(info[4]);
    let bh_count = info[5];

    // Invocation g takes queries i0 .. i0 + QPI of row bh (a 2-D grid when there are many).
    let blocks = (lq + QPI - 1u) / QPI;
    let g = gid.x + gid.y * info[6];
    if (g >= bh_count * blocks) {
        return;
    }
    let bh = g / blocks;
    let i0 = (g % blocks) * QPI;
    let last = min(i0 + QPI, lq) - 1u;
    let lo = key_range(i0 + q_offset, lk, window).x;
    let hi = key_range(last + q_offset, lk, window).y;

    var qv: array<vec4<f32>, {{ qpi_d4 }}>;
    var acc: array<vec4<f32>, {{ qpi_d4 }}>;
    var kc: array<vec4<f32>, D4>;
    var m: array<f32, QPI>; // running max of each query's scores
    var l: array<f32, QPI>; // running sum of exp(score - m)
    var seen: array<vec2<u32>, QPI>; // each query's own key range
{{ q_load }}

    let kv_base = bh * lk * D;
    for (var j = lo; j < hi; j++) {
        let row = kv_base + j * D;
{{ k_read }}
        var s: array<f32, QPI>;
{{ scores }}
        // Online softmax: rescale a query's sums when its max grows; masked keys weigh 0.
        var p: array<f32, QPI>;
{{ update }}
{{ v_read }}
{{ acc_add }}
    }

    // A query that sees no key at all gets zeros (plain softmax would give NaN).
{{ out_store }}
}
