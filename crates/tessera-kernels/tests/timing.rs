//! Rough timings of the kernels against the plain ops on the same device (not a benchmark suite:
//! `tessera bench kernels` will be). Ignored by default; run with
//! `cargo-serial test --workspace --test timing -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use burn::tensor::Device;
use common::{gpu, random};
use tessera_kernels::attention::{AttentionMask, attention, attention_reference};
use tessera_kernels::decoder::{Padding, conv3x3, conv3x3_reference, group_norm, group_norm_reference};
use tessera_kernels::quantize::{quantize, quantize_reference};

/// Median wall time of `f` in ms, device work included (synced), after one warm-up run.
fn time(device: &Device, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    device.sync().unwrap();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            device.sync().unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

#[test]
#[ignore]
fn kernel_vs_plain_ops() {
    let Some(device) = gpu() else { return };
    let var10 = AttentionMask::block_causal(&[1, 2, 3, 4, 5, 6, 8, 10, 13, 16].map(|p| p * p));
    let attn_cases = [
        ("VAR 10 scales, teacher forcing", [2, 16, 680, 680, 64], var10.clone()),
        ("VAR 10 scales, cache: last scale", [2, 16, 256, 680, 64], var10),
        ("RAR cache: 1 of 256", [8, 16, 1, 256, 64], AttentionMask::Causal),
        ("RAR 256 causal", [2, 16, 256, 256, 64], AttentionMask::Causal),
        ("windowed 64 of 1024", [1, 8, 1024, 1024, 64], AttentionMask::Window(64)),
    ];
    for (name, [b, h, lq, lk, d], mask) in attn_cases {
        let q = random([b, h, lq, d], 1, -1.0, 1.0, &device);
        let k = random([b, h, lk, d], 2, -1.0, 1.0, &device);
        let v = random([b, h, lk, d], 3, -1.0, 1.0, &device);
        let s = 1.0 / (d as f32).sqrt();
        let fused = time(&device, 5, || drop(attention(q.clone(), k.clone(), v.clone(), &mask, s)));
        let plain = time(&device, 5, || drop(attention_reference(q.clone(), k.clone(), v.clone(), &mask, s)));
        eprintln!("TIMING attention {name:<34} [{b},{h},{lq},{d}] Lk {lk}: kernel {fused:8.2} ms  plain {plain:8.2} ms  speed-up {:.2}x", plain / fused);
    }
    for (n, d, v) in [(2 * 680, 32, 4096), (8 * 256, 32, 4096), (4096, 16, 8192), (4096, 8, 512)] {
        let x = random([n, d], 4, -1.0, 1.0, &device);
        let cb = random([v, d], 5, -1.0, 1.0, &device);
        let fused = time(&device, 5, || drop(quantize(x.clone(), cb.clone())));
        let plain = time(&device, 5, || drop(quantize_reference(x.clone(), cb.clone())));
        eprintln!("TIMING quantize N {n:<5} D {d:<3} V {v:<5}: kernel {fused:8.2} ms  plain {plain:8.2} ms  speed-up {:.2}x", plain / fused);
    }
    for (shape, cout, padding, up) in [([1, 128, 32, 32], 128, Padding::Zero, 1), ([1, 64, 32, 32], 64, Padding::Reflect, 2), ([1, 32, 64, 64], 3, Padding::Zero, 1)] {
        let x = random(shape, 6, -1.0, 1.0, &device);
        let w = random([cout, shape[1], 3, 3], 7, -0.1, 0.1, &device);
        let fused = time(&device, 5, || drop(conv3x3(x.clone(), w.clone(), None, padding, up)));
        let plain = time(&device, 5, || drop(conv3x3_reference(x.clone(), w.clone(), None, padding, up)));
        eprintln!("TIMING decode conv3x3 {shape:?} -> {cout} {padding:?} up {up}: kernel {fused:8.2} ms  plain {plain:8.2} ms  speed-up {:.2}x", plain / fused);
    }
    for (shape, groups) in [([1, 128, 64, 64], 32), ([4, 256, 16, 16], 32)] {
        let x = random(shape, 8, -1.0, 1.0, &device);
        let (g, b) = (random([shape[1]], 9, 0.5, 1.5, &device), random([shape[1]], 10, -0.5, 0.5, &device));
        let fused = time(&device, 5, || drop(group_norm(x.clone(), g.clone(), b.clone(), groups, 1e-6, true)));
        let plain = time(&device, 5, || drop(group_norm_reference(x.clone(), g.clone(), b.clone(), groups, 1e-6, true)));
        eprintln!("TIMING decode group_norm+silu {shape:?} groups {groups}: kernel {fused:8.2} ms  plain {plain:8.2} ms  speed-up {:.2}x", plain / fused);
    }
}
