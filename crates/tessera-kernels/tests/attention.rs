//! The fused attention kernel against the plain burn ops, on random inputs and awkward shapes.

mod common;

use burn::tensor::{Device, Tensor};
use common::{gpu, max_abs_diff, random, to_vec};
use std::sync::Mutex;

use tessera_kernels::attention::{AttentionMask, attention, attention_cpu, attention_reference, set_software_tuning};
use tessera_kernels::kernels_enabled;

struct Case {
    name: &'static str,
    b: usize,
    h: usize,
    lq: usize,
    lk: usize,
    d: usize,
    mask: AttentionMask,
    scale: f32,
}

fn case(name: &'static str, [b, h, lq, lk, d]: [usize; 5], mask: AttentionMask) -> Case {
    Case { name, b, h, lq, lk, d, mask, scale: 1.0 / (d as f32).sqrt() }
}

/// VAR's token counts per scale (`pn²`).
fn var_blocks(patch_nums: &[usize]) -> Vec<usize> {
    patch_nums.iter().map(|p| p * p).collect()
}

fn inputs(c: &Case, seed: u64, device: &Device) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let q = random([c.b, c.h, c.lq, c.d], seed, -1.0, 1.0, device);
    let k = random([c.b, c.h, c.lk, c.d], seed + 1, -1.0, 1.0, device);
    let v = random([c.b, c.h, c.lk, c.d], seed + 2, -1.0, 1.0, device);
    (q, k, v)
}

/// The kernel's tuning is process-wide: tests that flip it take turns.
static TUNING: Mutex<()> = Mutex::new(());

/// Runs every case through the kernel and the plain ops on the same device, under both tunings
/// (several queries per invocation, as on software adapters, and the GPU's one or two).
fn check(cases: &[Case]) {
    let device = gpu();
    assert!(kernels_enabled(&device), "the wgpu device must take the kernel path");
    let _turn = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    for software in [true, false] {
        set_software_tuning(software);
        for (n, c) in cases.iter().enumerate() {
            let (q, k, v) = inputs(c, 100 + 10 * n as u64, &device);
            let fused = to_vec(attention(q.clone(), k.clone(), v.clone(), &c.mask, c.scale));
            let plain = to_vec(attention_reference(q, k, v, &c.mask, c.scale));
            assert!(fused.iter().all(|x| x.is_finite()), "{}: non-finite output", c.name);
            let diff = max_abs_diff(&fused, &plain);
            eprintln!("attention {:<28} [{}, {}, {}, {}] Lk {:<4} software tuning {software:<5} max abs diff {diff:.2e}", c.name, c.b, c.h, c.lq, c.d, c.lk);
            assert!(diff <= 1e-4, "{} (software tuning {software}): max abs diff {diff}", c.name);
        }
    }
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn no_mask_and_cross_attention_match_plain_ops() {
    check(&no_mask_cases());
}

fn no_mask_cases() -> Vec<Case> {
    vec![
        case("self, 77 tokens", [2, 3, 77, 77, 64], AttentionMask::None),
        case("cross, 37 over 129", [1, 2, 37, 129, 128], AttentionMask::None),
        case("cross, 100 over 3", [2, 1, 100, 3, 16], AttentionMask::None),
        case("one query, one key", [1, 1, 1, 1, 8], AttentionMask::None),
        case("head dim 3", [1, 2, 5, 9, 3], AttentionMask::None),
        case("head dim 128, 65 keys", [1, 1, 65, 65, 128], AttentionMask::None),
        // Long key loops: software adapters stop an invocation after ~65535 loop iterations, which
        // a per-dimension inner loop would hit here (the kernel unrolls it).
        case("cross, 1 over 8192, dim 128", [1, 1, 1, 8192, 128], AttentionMask::None),
        case("cross, 3 over 3000, dim 33", [1, 1, 3, 3000, 33], AttentionMask::None),
    ]
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn causal_and_kv_cache_match_plain_ops() {
    check(&causal_cases());
}

fn causal_cases() -> Vec<Case> {
    vec![
        case("causal, 100", [1, 2, 100, 100, 32], AttentionMask::Causal),
        case("causal, head dim 128", [2, 1, 70, 70, 128], AttentionMask::Causal),
        case("cache: 1 query, 65 keys", [2, 4, 1, 65, 64], AttentionMask::Causal),
        case("cache: 5 queries, 130 keys", [1, 3, 5, 130, 16], AttentionMask::Causal),
        case("RAR cache: 1 of 256", [2, 2, 1, 256, 64], AttentionMask::Causal),
    ]
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn windowed_causal_matches_plain_ops() {
    check(&window_cases());
}

fn window_cases() -> Vec<Case> {
    vec![
        case("window 8", [2, 2, 90, 90, 32], AttentionMask::Window(8)),
        case("window 0 (itself only)", [1, 1, 20, 20, 16], AttentionMask::Window(0)),
        case("window wider than sequence", [1, 2, 50, 50, 64], AttentionMask::Window(500)),
        case("window 10, cache 3 of 70", [1, 1, 3, 70, 64], AttentionMask::Window(10)),
        case("window 63, 200 tokens", [1, 1, 200, 200, 8], AttentionMask::Window(63)),
    ]
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn block_causal_matches_plain_ops() {
    check(&block_causal_cases());
}

fn block_causal_cases() -> Vec<Case> {
    let var7 = AttentionMask::block_causal(&var_blocks(&[1, 2, 3, 4, 5, 6, 8])); // 155 tokens
    let var10 = AttentionMask::block_causal(&var_blocks(&[1, 2, 3, 4, 5, 6, 8, 10, 13, 16])); // 680
    vec![
        case("VAR 7 scales, one head", [2, 1, 155, 155, 64], var7.clone()),
        case("VAR 7 scales, cache: last scale", [2, 2, 64, 155, 64], var7.clone()),
        case("VAR 7 scales, cache: scale 2", [1, 2, 4, 5, 64], var7),
        case("VAR 10 scales", [1, 2, 680, 680, 64], var10),
        case("ragged blocks, head dim 128", [1, 1, 40, 40, 128], AttentionMask::block_causal(&[3, 1, 17, 19])),
    ]
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn sharp_softmax_stays_stable() {
    check(&sharp_cases());
}

fn sharp_cases() -> Vec<Case> {
    // Cosine attention with VAR's largest temperature (100): scores up to ±100 per key.
    let mut c = case("scale 100", [1, 2, 80, 80, 32], AttentionMask::Causal);
    c.scale = 100.0 / 32.0;
    let mut c2 = case("scale 30, no mask", [1, 1, 70, 130, 64], AttentionMask::None);
    c2.scale = 30.0;
    vec![c, c2]
}

/// burn's CPU backend takes its own fused attention: every case above against the plain ops on
/// the CPU (its backward pass under autodiff is checked in `cpu::autodiff`'s tests).
#[test]
fn cpu_fused_attention_matches_plain_ops() {
    let device = Device::flex();
    let all = [no_mask_cases(), causal_cases(), window_cases(), block_causal_cases(), sharp_cases()];
    for (n, c) in all.iter().flatten().enumerate() {
        let (q, k, v) = inputs(c, 300 + 10 * n as u64, &device);
        let fused = to_vec(attention_cpu(q.clone(), k.clone(), v.clone(), &c.mask, c.scale));
        // The same values as views into [B, L, H, D] tensors (heads split off a projection, as the
        // models pass them): read in place by the kernel.
        let strided = |t: &Tensor<4>| t.clone().swap_dims(1, 2).into_data();
        let [qs, ks, vs] = [&q, &k, &v].map(|t| Tensor::<4>::from_data(strided(t), &device).swap_dims(1, 2));
        assert_eq!(to_vec(attention_cpu(qs, ks, vs, &c.mask, c.scale)), fused, "{}: strided inputs", c.name);
        let routed = to_vec(attention(q.clone(), k.clone(), v.clone(), &c.mask, c.scale));
        assert_eq!(routed, fused, "{}: `attention` on the CPU must take the fused path", c.name);
        let plain = to_vec(attention_reference(q, k, v, &c.mask, c.scale));
        assert!(fused.iter().all(|x| x.is_finite()), "{}: non-finite output", c.name);
        let diff = max_abs_diff(&fused, &plain);
        eprintln!("cpu attention {:<28} [{}, {}, {}, {}] Lk {:<4} max abs diff {diff:.2e}", c.name, c.b, c.h, c.lq, c.d, c.lk);
        assert!(diff <= 1e-4, "{}: max abs diff {diff}", c.name);
    }
}

/// Independent of both implementations: a direct f64 loop over the mask's definition.
#[test]
fn plain_ops_agree_with_a_direct_loop() {
    let device = Device::flex();
    let blocks = AttentionMask::block_causal(&[1, 4, 9]);
    for (mask, lq, lk) in [
        (AttentionMask::None, 6, 9),
        (AttentionMask::None, 9, 4),
        (AttentionMask::Causal, 14, 14),
        (AttentionMask::Causal, 3, 14),
        (AttentionMask::Window(2), 14, 14),
        (blocks.clone(), 14, 14),
        (blocks, 9, 14),
    ] {
        let c = Case { name: "loop", b: 1, h: 2, lq, lk, d: 5, mask: mask.clone(), scale: 0.7 };
        let (q, k, v) = inputs(&c, 7, &device);
        let got = to_vec(attention(q.clone(), k.clone(), v.clone(), &mask, c.scale));
        let (q, k, v) = (to_vec(q), to_vec(k), to_vec(v));
        let mut want = vec![0.0f32; 2 * lq * 5];
        for h in 0..2 {
            for i in 0..lq {
                // Queries are the last Lq positions of the keys (unused without a mask).
                let pos = (i + lk).saturating_sub(lq);
                let visible: Vec<usize> = (0..lk).filter(|&j| match &mask {
                    AttentionMask::None => true,
                    AttentionMask::Causal => j <= pos,
                    AttentionMask::Window(w) => j <= pos && pos - j <= *w,
                    AttentionMask::BlockCausal(_) => {
                        // blocks [0], [1..5], [5..14]
                        let end = if pos < 1 { 1 } else if pos < 5 { 5 } else { 14 };
                        j < end
                    }
                }).collect();
                let scores: Vec<f64> = visible.iter().map(|&j| {
                    (0..5).map(|d| q[(h * lq + i) * 5 + d] as f64 * k[(h * lk + j) * 5 + d] as f64).sum::<f64>() * 0.7
                }).collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for d in 0..5 {
                    want[(h * lq + i) * 5 + d] = (visible.iter().zip(&scores)
                        .map(|(&j, s)| (s - m).exp() / z * v[(h * lk + j) * 5 + d] as f64).sum::<f64>()) as f32;
                }
            }
        }
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-5, "{mask:?} Lq {lq} Lk {lk}: diff {diff}");
    }
}

#[test]
fn mask_definitions() {
    let m = AttentionMask::block_causal(&[1, 4, 9]);
    assert!(m.allows(0, 0) && !m.allows(0, 1));
    assert!(m.allows(1, 4) && !m.allows(4, 5));
    assert!(m.allows(5, 13) && m.allows(13, 0));
    assert!(AttentionMask::Window(2).allows(5, 3) && !AttentionMask::Window(2).allows(5, 2));
    assert!(!AttentionMask::Window(2).allows(5, 6));
    assert!(AttentionMask::Causal.allows(4, 4) && !AttentionMask::Causal.allows(4, 5));
}

#[test]
#[should_panic(expected = "positional mask")]
fn more_queries_than_keys_is_refused_for_positional_masks() {
    let device = Device::flex();
    let q = Tensor::<4>::zeros([1, 1, 4, 8], &device);
    let k = Tensor::<4>::zeros([1, 1, 3, 8], &device);
    let _ = attention(q, k.clone(), k, &AttentionMask::Causal, 1.0);
}

/// Training path: the fused forward with its custom backward gives the plain ops' gradients.
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn gradients_match_plain_ops() {
    let device = gpu();
    assert!(kernels_enabled(&device.clone().autodiff()));
    let var7 = AttentionMask::block_causal(&var_blocks(&[1, 2, 3, 4, 5, 6, 8]));
    let cases = [
        case("causal", [2, 2, 50, 50, 32], AttentionMask::Causal),
        case("VAR 7 scales, teacher forcing", [1, 2, 155, 155, 64], var7.clone()),
        case("VAR 7 scales, cache: last scale", [1, 1, 64, 155, 64], var7),
        case("window 5, head dim 128", [1, 1, 40, 40, 128], AttentionMask::Window(5)),
        case("cross, 20 over 37, head dim 3", [2, 1, 20, 37, 3], AttentionMask::None),
    ];
    for (n, c) in cases.iter().enumerate() {
        let seed = 500 + 10 * n as u64;
        let run = |fused: bool| {
            let (q, k, v) = inputs(c, seed, &device);
            let (q, k, v) = (q.autodiff().require_grad(), k.autodiff().require_grad(), v.autodiff().require_grad());
            let w = random([c.b, c.h, c.lq, c.d], seed + 5, -1.0, 1.0, &device);
            let f = if fused { attention } else { attention_reference };
            let out = f(q.clone(), k.clone(), v.clone(), &c.mask, c.scale);
            let grads = (out.clone() * w).sum().backward();
            let [dq, dk, dv] = [q.grad(&grads), k.grad(&grads), v.grad(&grads)].map(|g| to_vec(g.expect("a gradient")));
            [to_vec(out), dq, dk, dv]
        };
        let (fused, plain) = (run(true), run(false));
        for (name, (a, b)) in ["out", "dq", "dk", "dv"].iter().zip(fused.iter().zip(&plain)) {
            let diff = max_abs_diff(a, b);
            eprintln!("attention grad {:<32} {name}: max abs diff {diff:.2e}", c.name);
            assert!(diff <= 1e-4, "{} {name}: max abs diff {diff}", c.name);
            assert!(b.iter().any(|x| *x != 0.0), "{} {name}: zero gradient proves nothing", c.name);
        }
    }
}
