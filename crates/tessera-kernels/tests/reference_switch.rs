//! `--reference-ops` forces the plain ops even on a wgpu device. Its own test binary: the switch is
//! process-wide and would race with the kernel tests.

mod common;

use tessera_kernels::{kernels_enabled, reference_ops, set_reference_ops};

#[test]
fn the_switch_routes_to_the_plain_ops() {
    let Some(device) = common::gpu() else { return };
    assert!(!reference_ops());
    assert!(kernels_enabled(&device));
    assert!(kernels_enabled(&device.clone().autodiff()), "training takes the kernels too");
    set_reference_ops(true);
    assert!(!kernels_enabled(&device));
    set_reference_ops(false);
    assert!(kernels_enabled(&device));
}
