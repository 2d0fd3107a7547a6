//! The fused nearest-code kernel against the plain burn ops, on random inputs and awkward shapes.

mod common;

use burn::tensor::{Device, Int, Tensor};
use common::{from_vec, gpu, max_abs_diff, random, to_vec};
use tessera_kernels::quantize::{quantize, quantize_reference};
use tessera_kernels::kernels_enabled;

fn ints(t: Tensor<1, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap()
}

fn dist(x: &[f32], c: &[f32]) -> f64 {
    x.iter().zip(c).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum()
}

/// Checks one shape: the kernel's indices point at a nearest entry (equal to the plain ops' choice,
/// or as near within float rounding), and its codes are exactly those entries.
fn check(n: usize, d: usize, v: usize, seed: u64, device: &Device) {
    let x = random([n, d], seed, -1.0, 1.0, device);
    let codebook = random([v, d], seed + 1, -1.0, 1.0, device);
    let (idx, codes) = quantize(x.clone(), codebook.clone());
    let (ref_idx, ref_codes) = quantize_reference(x.clone(), codebook.clone());
    assert_eq!(idx.dims(), [n]);
    assert_eq!(codes.dims(), [n, d]);
    let (idx, ref_idx) = (ints(idx), ints(ref_idx));
    let (xs, cb, codes, ref_codes) = (to_vec(x), to_vec(codebook), to_vec(codes), to_vec(ref_codes));
    let mut differing = 0;
    for i in 0..n {
        let (a, b) = (idx[i] as usize, ref_idx[i] as usize);
        assert!(a < v, "index {a} out of range {v}");
        assert_eq!(&codes[i * d..(i + 1) * d], &cb[a * d..(a + 1) * d], "row {i}: codes are not entry {a}");
        if a != b {
            // Only a near-tie may differ: both distances equal up to rounding.
            let row = &xs[i * d..(i + 1) * d];
            let (da, db) = (dist(row, &cb[a * d..(a + 1) * d]), dist(row, &cb[b * d..(b + 1) * d]));
            assert!(da <= db + 1e-5, "row {i}: kernel chose {a} at {da}, plain ops {b} at {db}");
            differing += 1;
        }
    }
    // Brute force in f64 on a few rows: the kernel's choice is the true nearest up to rounding.
    for i in (0..n).step_by((n / 7).max(1)) {
        let row = &xs[i * d..(i + 1) * d];
        let best = (0..v).map(|j| dist(row, &cb[j * d..(j + 1) * d])).fold(f64::MAX, f64::min);
        let got = dist(row, &cb[idx[i] as usize * d..(idx[i] as usize + 1) * d]);
        assert!(got <= best + 1e-5, "row {i}: {got} vs true nearest {best}");
    }
    let diff = if differing == 0 { max_abs_diff(&codes, &ref_codes) } else { f32::NAN };
    eprintln!("quantize N {n:<5} D {d:<3} V {v:<5}: {differing} near-tie index differences, codes max abs diff {diff:.2e}");
    assert!(differing * 1000 <= n.max(1000), "too many differing indices: {differing} of {n}");
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn quantize_matches_plain_ops() {
    let device = gpu();
    assert!(kernels_enabled(&device), "the wgpu device must take the kernel path");
    for (k, (n, d, v)) in [
        (1000, 32, 512),  // VAR's tokenizer: Cvae 32, 4096-entry codebooks below
        (680, 32, 4096),
        (77, 8, 1),       // codebook of one
        (300, 16, 8192),  // codebook of 8192
        (1, 64, 100),     // one vector
        (4100, 4, 37),    // N not a multiple of the workgroup, V not of the tile
        (65, 3, 1000),    // odd length
        (130, 256, 70),   // long vectors: tile of 15 entries
    ]
    .into_iter()
    .enumerate()
    {
        check(n, d, v, 1000 + 10 * k as u64, &device);
    }
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn exact_hits_and_ties_pick_the_lowest_index() {
    let device = gpu();
    // Entries 1 and 3 are equal; every x is exactly one of the entries.
    let cb = vec![0.0, 0.0, 1.0, 2.0, -1.0, 0.5, 1.0, 2.0];
    let x = vec![1.0, 2.0, 0.0, 0.0, -1.0, 0.5, 0.9, 2.1];
    let (idx, codes) = quantize(from_vec(x, [4, 2], &device), from_vec(cb, [4, 2], &device));
    assert_eq!(ints(idx), vec![1, 0, 2, 1]);
    assert_eq!(to_vec(codes), vec![1.0, 2.0, 0.0, 0.0, -1.0, 0.5, 1.0, 2.0]);
}

#[test]
fn cpu_device_uses_the_plain_ops() {
    let device = Device::flex();
    assert!(!kernels_enabled(&device));
    let x = random([50, 6], 5, -1.0, 1.0, &device);
    let cb = random([9, 6], 6, -1.0, 1.0, &device);
    let (a, ac) = quantize(x.clone(), cb.clone());
    let (b, bc) = quantize_reference(x, cb);
    assert_eq!(ints(a), ints(b));
    assert_eq!(to_vec(ac), to_vec(bc));
}

/// Training path: indices from the kernel, codes from a tracked gather, so the codebook's gradient
/// equals the plain ops' (and the vectors get none, through either path).
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn codebook_gradient_matches_plain_ops() {
    let device = gpu();
    let run = |fused: bool| {
        let x = random([300, 8], 70, -1.0, 1.0, &device).autodiff().require_grad();
        let cb = random([40, 8], 71, -1.0, 1.0, &device).autodiff().require_grad();
        let w = random([300, 8], 72, -1.0, 1.0, &device);
        let f = if fused { quantize } else { quantize_reference };
        let (idx, codes) = f(x.clone(), cb.clone());
        let grads = (codes * w).sum().backward();
        assert!(x.grad(&grads).is_none_or(|g| to_vec(g).iter().all(|v| *v == 0.0)), "no gradient reaches x");
        (ints(idx), to_vec(cb.grad(&grads).expect("codebook gradient")))
    };
    let ((ia, ga), (ib, gb)) = (run(true), run(false));
    assert_eq!(ia, ib);
    assert!(gb.iter().any(|v| *v != 0.0));
    assert!(max_abs_diff(&ga, &gb) <= 1e-5, "codebook grads differ by {}", max_abs_diff(&ga, &gb));
}
