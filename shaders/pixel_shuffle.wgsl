// Pixel shuffle (depth to space, PyTorch's `pixel_shuffle`): out[b, c, h*r + i, w*r + j] =
// x[b, c*r*r + i*r + j, h, w]. One invocation per output element; the grid is (output column
// tiles, output rows, b * C + c), so no index needs a division by a run-time size (software
// adapters pay dearly for those). Template value: r (the up-scaling factor).
// Layout: x [B, C*r*r, H, W], out [B, C, H*r, W*r], contiguous f32.

const R: u32 = {{ r }}u;
const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// [H, W]
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = info[0];
    let w = info[1];
    let wo = w * R;
    let ox = wid.x * WG + lid;
    if (ox >= wo) {
        return;
    }
    let oy = wid.y;
    let bc = wid.z; // b * C + c
    let ch = bc * R * R + (oy % R) * R + (ox % R); // b * C*r*r + input channel
    out[(bc * h * R + oy) * wo + ox] = x[(ch * h + oy / R) * w + ox / R];
}
