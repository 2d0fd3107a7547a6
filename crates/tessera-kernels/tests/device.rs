//! The device starts (on lavapipe in CI) and computes the same numbers as the CPU backend.

mod common;

use burn::tensor::{Device, Tensor, TensorData, Tolerance};
use common::gpu_compute;
use tessera_kernels::device::{self, Preference};

fn small_computation(device: &Device) -> TensorData {
    // Same inputs on every device, from a formula rather than the CPU backend's random stream,
    // which is global: the other GPU test drawing from it at the same time changed the inputs.
    let values = |rows: usize, cols: usize, k: f32| {
        let v: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * k).sin()).collect();
        Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), device)
    };
    let (a, b) = (values(33, 17, 0.37), values(17, 9, 0.91));
    (a.matmul(b).exp() + 1.0).log().into_data()
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn wgpu_device_starts_and_matches_the_cpu_backend() {
    let compute = gpu_compute();
    let report = compute.adapter.clone().expect("a GPU preference yields an adapter report");
    eprintln!("{}", compute.describe());
    assert!(!report.name.is_empty());
    assert!(report.max_storage_buffer_binding_size >= 128 << 20, "{report:?}");
    assert!(report.max_compute_invocations_per_workgroup >= 256);
    let in_ci = std::env::var_os("CI").is_some() || std::env::var_os("TESSERA_REQUIRE_GPU").is_some();
    if in_ci && std::env::var_os("TESSERA_EXPECT_HARDWARE_GPU").is_none() {
        // CI machines have no GPU: the adapter must be the software one, and reported as such.
        assert!(report.is_software, "expected a software adapter in CI, got {report:?}");
    }
    let on_gpu = small_computation(&compute.device);
    let on_cpu = small_computation(&Device::flex());
    on_gpu.assert_approx_eq::<f32>(&on_cpu, Tolerance::absolute(1e-4));
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn a_device_used_from_another_thread_is_still_reported_lost() {
    let compute = gpu_compute();
    let device = compute.device.clone();
    std::thread::spawn(move || small_computation(&device)).join().unwrap();
    let wgpu_device = compute.wgpu_device().expect("a GPU compute has a wgpu device");
    wgpu_device.destroy();
    let _ = wgpu_device.poll(burn::backend::wgpu::wgpu::PollType::wait_indefinitely());
    assert!(compute.is_lost(), "the device-lost callback did not fire (was it replaced?)");
}

#[test]
fn cpu_preference_never_touches_wgpu() {
    let compute = device::create_blocking(Preference::Cpu).unwrap();
    assert!(!compute.is_gpu());
    assert!(compute.adapter.is_none());
    assert_eq!(compute.describe(), "CPU (burn flex backend)");
    let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &compute.device);
    assert_eq!(x.sum().into_scalar::<f32>(), 6.0);
}

#[test]
fn preference_parses_and_rejects_nonsense() {
    assert_eq!("GPU".parse::<Preference>().unwrap(), Preference::Gpu);
    assert_eq!("cpu".parse::<Preference>().unwrap(), Preference::Cpu);
    assert_eq!("auto".parse::<Preference>().unwrap(), Preference::Auto);
    let err = "tpu".parse::<Preference>().unwrap_err().to_string();
    assert!(err.contains("tpu") && err.contains("auto, gpu or cpu"), "{err}");
}

/// A real loss: the wgpu device is destroyed after it has computed (so burn's compute server,
/// which installs wgpu callbacks of its own, has started). `is_lost` must notice, and the app
/// keeps running: errors after the loss are logged, not raised as panics.
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn a_destroyed_device_is_reported_lost() {
    let compute = gpu_compute();
    small_computation(&compute.device);
    assert!(!compute.is_lost());
    let wgpu_device = compute.wgpu_device().expect("a GPU compute has a wgpu device");
    wgpu_device.destroy();
    let _ = wgpu_device.poll(burn::backend::wgpu::wgpu::PollType::wait_indefinitely());
    assert!(compute.is_lost(), "the device-lost callback did not fire (was it replaced?)");
    // Work submitted after the loss is an error wgpu reports to the handler, which must not panic.
    let buffer = wgpu_device.create_buffer(&burn::backend::wgpu::wgpu::BufferDescriptor {
        label: Some("after the loss"),
        size: 4,
        usage: burn::backend::wgpu::wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    drop(buffer);
}

/// On a software adapter work goes to burn's CPU backend, saying why, unless forced onto the
/// adapter (`--device gpu`, the Device tab); a real GPU and the CPU backend keep their own device.
#[test]
fn work_leaves_a_software_adapter_for_the_cpu_unless_forced() {
    let mut compute = device::Compute::cpu(None);
    assert!(compute.work_device().1.is_none(), "the CPU backend works on itself");
    compute.adapter = Some(device::AdapterReport {
        name: "SwiftShader Device".into(),
        backend: "BrowserWebGpu".into(),
        device_type: "Cpu".into(),
        driver: String::new(),
        is_software: true,
        max_storage_buffer_binding_size: 1 << 27,
        max_buffer_size: 1 << 28,
        max_compute_workgroup_storage_size: 16384,
        max_compute_invocations_per_workgroup: 256,
        max_compute_workgroup_size_x: 256,
        shader_f16: false,
        subgroups: false,
        timestamp_query: false,
    });
    // Stands for the adapter's device: what work_device hands back when it keeps the adapter.
    compute.device = Device::flex().autodiff();
    let (on, note) = compute.work_device();
    assert_eq!(on, Device::flex());
    assert!(note.is_some_and(|n| n.contains("CPU backend") && n.contains("SwiftShader")));
    let clone = compute.clone();
    compute.set_software_adapter_forced(true);
    assert!(clone.software_adapter_forced(), "every clone sees the setting");
    assert_eq!(clone.work_device(), (compute.device.clone(), None));
    compute.set_software_adapter_forced(false);
    compute.adapter.as_mut().unwrap().is_software = false;
    assert_eq!(compute.work_device(), (compute.device.clone(), None), "a real GPU works on itself");
}
