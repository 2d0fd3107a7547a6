//! How the window's wgpu device is made, so that burn can share it (stack-notes §1.3).
//!
//! egui creates the device because only egui knows the window surface; it must ask for what
//! burn needs (every adapter feature and limit: [`tessera_kernels::device::device_descriptor`]).
//! A GL adapter (the browser's WebGL2 fallback when WebGPU is missing) cannot run burn's compute
//! shaders: there egui gets its usual downlevel device and burn runs on the CPU backend.

use std::sync::Arc;

use egui_wgpu::{WgpuConfiguration, WgpuSetup, WgpuSetupCreateNew};
use tessera_kernels::device::{self, Compute};

/// The egui wgpu configuration Tessera uses on the desktop, in the browser and in UI tests.
pub fn wgpu_configuration() -> WgpuConfiguration {
    let mut create = WgpuSetupCreateNew::without_display_handle();
    create.device_descriptor = Arc::new(|adapter: &wgpu::Adapter| {
        if adapter.get_info().backend == wgpu::Backend::Gl {
            wgpu::DeviceDescriptor {
                label: Some("tessera (ui only)"),
                required_limits: wgpu::Limits {
                    max_texture_dimension_2d: 8192,
                    ..wgpu::Limits::downlevel_webgl2_defaults()
                },
                ..Default::default()
            }
        } else {
            device::device_descriptor(adapter)
        }
    });
    WgpuConfiguration { wgpu_setup: WgpuSetup::CreateNew(create), ..Default::default() }
}

/// The compute device for an app whose window egui opened: egui's own device when it can
/// compute, else the CPU backend with a notice saying why.
pub fn compute_from_render_state(render_state: Option<&egui_wgpu::RenderState>) -> Compute {
    let Some(rs) = render_state else {
        return Compute::cpu(Some("the window has no wgpu renderer; computing on the CPU".into()));
    };
    let info = rs.adapter.get_info();
    if info.backend == wgpu::Backend::Gl {
        return Compute::cpu(Some(format!(
            "'{}' is a WebGL/OpenGL adapter without compute shaders; computing on the CPU (slow). \
             A browser with WebGPU (recent Chrome or Edge; Firefox/Safari with WebGPU enabled) is much faster.",
            info.name
        )));
    }
    match device::register(rs.instance.clone(), rs.adapter.clone(), rs.device.clone(), rs.queue.clone()) {
        Ok(compute) => compute,
        Err(e) => Compute::cpu(Some(format!("{e}; computing on the CPU instead"))),
    }
}
