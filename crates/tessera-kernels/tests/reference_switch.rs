//! `--reference-ops` forces the plain ops even on a wgpu device. Its own test binary: the switch is
//! process-wide and would race with the kernel tests.

mod common;

use tessera_kernels::{kernels_enabled, reference_ops, set_reference_ops};

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn the_switch_routes_to_the_plain_ops() {
    let device = common::gpu();
    assert!(!reference_ops());
    assert!(kernels_enabled(&device));
    assert!(kernels_enabled(&device.clone().autodiff()), "training takes the kernels too");
    set_reference_ops(true);
    assert!(!kernels_enabled(&device));
    set_reference_ops(false);
    assert!(kernels_enabled(&device));
}
