//! The one compute device Tessera runs on.
//!
//! On the desktop, egui creates the wgpu device (it alone knows the window surface) and burn
//! registers that same device: [`device_descriptor`] is what egui must ask for, [`register`] hands
//! the handles to burn. Headless commands, tests and the browser's pre-flight check create the
//! device themselves with [`create`], through the same two functions, so there is one code path.
//!
//! Why the descriptor asks for *every* adapter feature and limit: cubecl decides which dtypes,
//! atomics and subgroup ops its kernels may use from `adapter.features()`, not from the device.
//! A device created with fewer features (egui's default) would be handed shaders it rejects
//! (stack-notes §1.3).
//!
//! Where no adapter exists at all, [`create`] falls back to burn's pure-Rust CPU backend (`flex`)
//! and says why in [`Compute::notice`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::wgpu::{WgpuSetup, wgpu};
use burn::tensor::Device;

/// Which device the user asked for (`--device`, the app's settings, `TESSERA_DEVICE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Preference {
    /// The best wgpu adapter (a real GPU before a software one), else the CPU backend.
    #[default]
    Auto,
    /// A wgpu adapter or an error: never falls back to the CPU.
    Gpu,
    /// burn's CPU backend, even when a GPU exists.
    Cpu,
}

impl Preference {
    /// Reads `TESSERA_DEVICE` (`auto`, `gpu`, `cpu`); unset means [`Preference::Auto`].
    pub fn from_env() -> Result<Self, DeviceError> {
        match std::env::var("TESSERA_DEVICE") {
            Ok(v) => v.parse(),
            Err(_) => Ok(Self::Auto),
        }
    }
}

impl std::str::FromStr for Preference {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "gpu" | "wgpu" => Ok(Self::Gpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => Err(DeviceError::BadPreference(other.to_string())),
        }
    }
}

/// Errors of device creation. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no GPU adapter was found ({0}); install a Vulkan driver (on Linux without a GPU: `apt-get install mesa-vulkan-drivers` for the lavapipe software adapter), or use the CPU with `--device cpu`")]
    NoAdapter(String),
    #[error("the adapter '{adapter}' refused to create a device: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("burn could not register the wgpu device: {0}")]
    Register(String),
    #[error("unknown device preference '{0}': use auto, gpu or cpu")]
    BadPreference(String),
}

/// What `tessera info` and the app's pre-flight panel show about the adapter.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    /// Vulkan, Metal, Dx12, Gl, BrowserWebGpu.
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other.
    pub device_type: String,
    pub driver: String,
    /// A CPU rasteriser posing as a GPU (lavapipe/llvmpipe, SwiftShader, WARP): correct but slow.
    pub is_software: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamp_query: bool,
}

impl AdapterReport {
    pub fn new(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        // Browsers hide the adapter's name (fingerprinting); say at least what kind it is.
        let name = match info.name.trim() {
            "" if info.backend == wgpu::Backend::BrowserWebGpu => "WebGPU adapter".to_string(),
            "" => format!("{:?} adapter", info.backend),
            name => name.to_string(),
        };
        Self {
            is_software: is_software(&info),
            name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver, info.driver_info]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size as u64,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "adapter        {}", self.name)?;
        writeln!(f, "backend        {}", self.backend)?;
        let kind = if self.is_software { " (software adapter: correct, but CPU speed)" } else { "" };
        writeln!(f, "device type    {}{kind}", self.device_type)?;
        if !self.driver.is_empty() {
            writeln!(f, "driver         {}", self.driver)?;
        }
        writeln!(f, "limits         storage binding {:.0} MiB, buffer {:.0} MiB, workgroup storage {} KiB, {} invocations per workgroup (x up to {})",
            mib(self.max_storage_buffer_binding_size), mib(self.max_buffer_size),
            self.max_compute_workgroup_storage_size / 1024, self.max_compute_invocations_per_workgroup,
            self.max_compute_workgroup_size_x)?;
        write!(f, "features       shader-f16 {}, subgroups {}, timestamp-query {}",
            yes(self.shader_f16), yes(self.subgroups), yes(self.timestamp_query))
    }
}

/// A software rasteriser reports `Cpu` on Vulkan; SwiftShader in a browser may not, so names count too.
fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader", "warp", "microsoft basic render"]
            .iter()
            .any(|s| name.contains(s))
}

/// The burn device everything runs on, and what it is.
#[derive(Clone, Debug)]
pub struct Compute {
    pub device: Device,
    /// `None` on the CPU backend.
    pub adapter: Option<AdapterReport>,
    /// Why the CPU backend is used, when it is (shown to the user once).
    pub notice: Option<String>,
    lost: Arc<AtomicBool>,
    /// [`Compute::set_software_adapter_forced`], shared by every clone.
    software_forced: Arc<AtomicBool>,
    /// The wgpu device behind `device` (`None` on the CPU backend).
    wgpu: Option<wgpu::Device>,
}

impl Compute {
    /// burn's pure-Rust CPU backend.
    pub fn cpu(notice: Option<String>) -> Self {
        Self { device: Device::flex(), adapter: None, notice, lost: Arc::default(), software_forced: Arc::default(), wgpu: None }
    }

    /// One line for logs and status bars: `llvmpipe (LLVM 15.0.6, 256 bits) · Vulkan · software`.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(a) => format!(
                "{} · {}{}",
                a.name,
                a.backend,
                if a.is_software { " · software" } else { "" }
            ),
            None => "CPU (burn flex backend)".to_string(),
        }
    }

    pub fn is_gpu(&self) -> bool {
        self.adapter.is_some()
    }

    /// Where sampling and training run: this device, unless its adapter is a software rasteriser
    /// (lavapipe, SwiftShader) and [`Compute::set_software_adapter_forced`] is off. There burn's CPU backend
    /// is several times faster: on the 2-core machine it trains the tiny preset 5-7x faster
    /// (batch 32: tokenizer 0.9 s per step vs 6.7 s on lavapipe, transformer 1.55 vs 8.6 s) and
    /// samples 5-9x faster (BENCHMARKS.md); in the browser the first var-tiny digit took 38.7 s on
    /// SwiftShader's WebGPU and 2.4 s on the CPU backend. The note says why when it is not this
    /// device.
    pub fn work_device(&self) -> (Device, Option<String>) {
        match &self.adapter {
            Some(a) if a.is_software && !self.software_adapter_forced() => {
                let note = format!("computing on the CPU backend: faster than the software adapter {}", self.describe());
                (Device::flex(), Some(note))
            }
            _ => (self.device.clone(), None),
        }
    }

    /// Makes [`Compute::work_device`] keep a software adapter instead of burn's CPU backend
    /// (`--device gpu`, the app's Device tab, a link's `device=gpu`): slower, but it runs the
    /// WGSL kernels on a machine without a GPU. Every clone of this compute sees it.
    pub fn set_software_adapter_forced(&self, on: bool) {
        self.software_forced.store(on, Ordering::Relaxed);
    }

    /// Whether [`Compute::set_software_adapter_forced`] is on.
    pub fn software_adapter_forced(&self) -> bool {
        self.software_forced.load(Ordering::Relaxed)
    }

    /// True once wgpu reported the device lost (driver reset, GPU removed, browser tab evicted).
    /// Callers stop submitting work, keep their last checkpoint, and offer to restart.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The wgpu device the burn device runs on (`None` on the CPU backend).
    pub fn wgpu_device(&self) -> Option<&wgpu::Device> {
        self.wgpu.as_ref()
    }

    /// Records that the device is gone: wgpu's device-lost callback calls this, and so can
    /// anything else that learns it first (and the app's tests, to see how the app copes).
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }
}

/// The device request Tessera makes, whoever makes it: every adapter feature (minus
/// `MAPPABLE_PRIMARY_BUFFERS`, which slows discrete GPUs) and the adapter's own limits, as cubecl does.
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("tessera"),
        required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        trace: wgpu::Trace::Off,
        // SAFETY: cubecl's own request enables them; burn's templates may use passthrough shaders.
        experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
    }
}

/// Registers wgpu handles created elsewhere (by egui, or by [`create`]) as the burn device.
/// Registration is synchronous, also in the browser.
pub fn register(
    instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
) -> Result<Compute, DeviceError> {
    let report = AdapterReport::new(&adapter);
    crate::attention::set_software_tuning(report.is_software);
    let backend = adapter.get_info().backend;
    let wgpu_device = device.clone();
    let device = Device::wgpu_options()
        .setup(WgpuSetup { instance, adapter, device, queue, backend })
        .init()
        .map_err(|e| DeviceError::Register(e.to_string()))?;
    // cubecl installs its own device-lost callback and error handler when its compute server
    // starts, and wgpu keeps only the last of each; so the server is started first (a one-float
    // tensor) and ours go in after it.
    let _ = burn::tensor::Tensor::<1>::zeros([1], &device);
    let limits = wgpu_device.limits();
    let buffer_limit = limits.max_buffer_size.min(u64::from(limits.max_storage_buffer_binding_size));
    let lost = Arc::new(AtomicBool::new(false));
    REGISTERED.lock().unwrap_or_else(|p| p.into_inner()).push(Registered { device: device.clone(), buffer_limit, lost: lost.clone() });
    watch_for_loss(&wgpu_device, lost.clone());
    Ok(Compute { device, adapter: Some(report), notice: None, lost, software_forced: Arc::default(), wgpu: Some(wgpu_device) })
}

/// What jobs that only hold a burn [`Device`] need to know of the GPU behind it.
struct Registered {
    device: Device,
    buffer_limit: u64,
    lost: Arc<AtomicBool>,
}

/// Every GPU device [`register`]ed in this process.
static REGISTERED: std::sync::Mutex<Vec<Registered>> = std::sync::Mutex::new(Vec::new());

fn registered<T>(device: &Device, read: impl FnOnce(&Registered) -> T) -> Option<T> {
    REGISTERED.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|r| r.device == *device).map(read)
}

/// Whether `device` is a GPU that wgpu reported lost ([`Compute::is_lost`]): running jobs ask
/// between steps and end with [`LOST`] instead of submitting more work. Always false on the CPU
/// backend.
pub fn is_lost(device: &Device) -> bool {
    registered(device, |r| r.lost.load(Ordering::Relaxed)).unwrap_or(false)
}

/// [`is_lost`] for a job whose step just failed (a panic in the backend's readback): with work in
/// flight, wgpu reports the loss once that work is retired, a moment after the failure, so on
/// the desktop a registered GPU is given up to a second to say so (the browser cannot block:
/// there it is asked once). On the CPU backend: false at once.
pub fn lost_after_failure(device: &Device) -> bool {
    if registered(device, |_| ()).is_none() {
        return false;
    }
    #[cfg(not(target_arch = "wasm32"))]
    for _ in 0..20 {
        if is_lost(device) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    is_lost(device)
}

/// The message a job ends with when its GPU is lost.
pub const LOST: &str = "the GPU device was lost (driver reset, GPU removed, or the browser reclaimed it): this job stopped";

/// The largest buffer `device` takes in bytes, when it is a registered GPU: the smaller of
/// wgpu's buffer and storage-binding limits (burn binds every tensor as storage). `None` on the
/// CPU backend, which has no such limit. Runs and generations check their estimate
/// (`tessera_models::memory`) against it before they start: wgpu answers a larger buffer with a
/// panic.
pub fn buffer_limit(device: &Device) -> Option<u64> {
    registered(device, |r| r.buffer_limit)
}

/// Sets `lost` when wgpu reports the device lost. Errors nobody captured still panic while the
/// device is healthy (that is how a validation bug shows, as with wgpu's default handler); once
/// it is lost every call errors, and those are only logged, so the app lives on to say so.
fn watch_for_loss(device: &wgpu::Device, lost: Arc<AtomicBool>) {
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, message| {
        log::error!("GPU device lost ({reason:?}): {message}");
        flag.store(true, Ordering::Relaxed);
    });
    device.on_uncaptured_error(Arc::new(move |error| {
        if lost.load(Ordering::Relaxed) {
            log::debug!("wgpu error after the device was lost: {error}");
        } else {
            panic!("wgpu error: {error}");
        }
    }));
}

/// Adapter preference order: real GPUs first, software rasterisers last (native: browsers offer one).
#[cfg(not(target_arch = "wasm32"))]
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    if is_software(info) {
        return 4;
    }
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        _ => 3,
    }
}

async fn best_adapter(instance: &wgpu::Instance) -> Option<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Honour WGPU_ADAPTER_NAME / WGPU_BACKEND the way wgpu's own helpers do.
        if let Ok(adapter) = wgpu::util::initialize_adapter_from_env(instance, None).await {
            return Some(adapter);
        }
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        adapters.sort_by_key(|a| rank(&a.get_info()));
        adapters.into_iter().next()
    }
    #[cfg(target_arch = "wasm32")]
    {
        instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .ok()
    }
}

/// Creates Tessera's own device (headless commands, tests, the browser before egui shares its own).
pub async fn create(preference: Preference) -> Result<Compute, DeviceError> {
    if preference == Preference::Cpu {
        return Ok(Compute::cpu(Some("using the CPU backend, as asked".into())));
    }

    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // GL adapters cannot run burn's compute shaders; skip them (and their driver noise) unless asked.
    descriptor.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(descriptor);
    let Some(adapter) = best_adapter(&instance).await else {
        let why = if cfg!(target_arch = "wasm32") {
            "this browser offers no WebGPU adapter".to_string()
        } else {
            "no Vulkan, Metal or DX12 adapter is visible to wgpu".to_string()
        };
        return match preference {
            Preference::Gpu => Err(DeviceError::NoAdapter(why)),
            _ => Ok(Compute::cpu(Some(format!("{why}; running on the CPU backend instead (much slower)")))),
        };
    };
    let (device, queue) = adapter
        .request_device(&device_descriptor(&adapter))
        .await
        .map_err(|e| DeviceError::RequestDevice { adapter: adapter.get_info().name, message: e.to_string() })?;
    register(instance, adapter, device, queue)
}

/// [`create`] for native callers that may block.
#[cfg(not(target_arch = "wasm32"))]
pub fn create_blocking(preference: Preference) -> Result<Compute, DeviceError> {
    pollster::block_on(create(preference))
}
