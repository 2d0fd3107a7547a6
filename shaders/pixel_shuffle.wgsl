// Pixel shuffle (depth to space, PyTorch's `pixel_shuffle`): out[b, c, h*r + i, w*r + j] =
// x[b, c*r*r + i*r + j, h, w]. One invocation per output element, consecutive invocations writing
// consecutive outputs. Template value: r (the up-scaling factor).
// Layout: x [B, C*r*r, H, W], out [B, C, H*r, W*r], contiguous f32.

const R: u32 = {{ r }}u;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// [total outputs, H, W, workgroups along x]
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = (wid.y * info[3] + wid.x) * 256u + lid;
    if (e >= info[0]) {
        return;
    }
    let h = info[1];
    let w = info[2];
    let wo = w * R;
    let ho = h * R;
    let ox = e % wo;
    let oy = (e / wo) % ho;
    let bc = e / (wo * ho); // b * C + c
    let ch = bc * R * R + (oy % R) * R + (ox % R); // b * C*r*r + input channel
    out[e] = x[(ch * h + oy / R) * w + ox / R];
}
