//! Jobs on a GPU (lavapipe in CI) meet its limits with a message: requests too large for its
//! largest buffer are refused before they start, instead of a panic inside wgpu.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::app::generate_settings::GenerateSettings;
use tessera::app::generation::{self, Input, JobStatus};
use tessera_kernels::device::{self, Compute, Preference};
use tessera_models::family::Family;
use tessera_models::generator::{ImageGenerator, MAX_IMAGES, SampleRequest, check_fits};

/// A wgpu device (lavapipe where there is no GPU); these tests are `#[ignore]`d, so asked for
/// (`--ignored`, as scripts/test.sh does) a missing adapter fails them.
fn gpu_compute() -> Compute {
    device::create_blocking(Preference::Gpu).unwrap_or_else(|e| panic!("no wgpu adapter ({e}); these tests need one (lavapipe will do)"))
}

fn shipped(family: Family, compute: &Compute) -> Arc<dyn ImageGenerator> {
    let pair = tessera::shipped::SHIPPED.iter().find(|s| s.family == family).unwrap();
    Arc::from(tessera::shipped::load_pair(pair.generator_bytes, pair.tokenizer_bytes, &compute.device).unwrap())
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(300), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn requests_beyond_the_largest_buffer_are_refused_saying_what_fits() {
    let compute = gpu_compute();
    let limit = tessera_kernels::buffer_limit(&compute.device).expect("a registered GPU has a buffer limit");
    assert!(limit >= 128 << 20, "WebGPU's smallest storage binding is 128 MiB: {limit}");
    assert_eq!(tessera_kernels::buffer_limit(&burn::tensor::Device::flex()), None, "the CPU backend has none");

    // The widest column images, as many as a request takes: far past any GPU's buffer.
    let columns = shipped(Family::Columns, &compute);
    let small = SampleRequest { classes: vec![1; 2], ..Default::default() };
    check_fits(columns.as_ref(), &small, Some(limit)).unwrap();
    let huge = SampleRequest { classes: vec![1; MAX_IMAGES], width: Some(512), ..Default::default() };
    let e = check_fits(columns.as_ref(), &huge, Some(limit)).unwrap_err().to_string();
    assert!(e.contains("MiB") && e.contains("use at most"), "{e}");

    // The same through the app's generation job: it fails with the message, nothing panics.
    let settings = GenerateSettings { generator: Family::Columns, count: MAX_IMAGES, width: Some(512), ..Default::default() };
    let job = generation::start(columns, settings, Input::Fresh, egui::Context::default());
    wait_until("the refused generation", || job.progress().status != JobStatus::Running);
    let JobStatus::Failed(message) = job.progress().status.clone() else { panic!("{:?}", job.progress().status) };
    assert!(message.contains("use at most"), "{message}");

}
