//! Jobs on a GPU (lavapipe in CI) meet its limits and its loss with a message: requests too large
//! for its largest buffer are refused before they start (wgpu would panic), and a device lost in
//! the middle of a generation or a training run ends the job with a message and keeps the
//! checkpoints saved so far, while the process goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::app::generate_settings::GenerateSettings;
use tessera::app::generation::{self, Input, JobStatus};
use tessera::app::training::{self, Phase, TrainJob, TrainRequest};
use tessera_data::Mnist;
use tessera_kernels::device::{self, Compute, Preference};
use tessera_models::family::Family;
use tessera_models::generator::{ImageGenerator, MAX_IMAGES, SampleRequest, check_fits};
use tessera_train::{Checkpoint, VarPreset};

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

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn a_device_lost_mid_generation_or_mid_training_ends_the_job_with_a_message() {
    // A generation: RAR draws token by token, so the loss lands in the middle of it.
    let compute = gpu_compute();
    let rar = shipped(Family::Rar, &compute);
    let settings = GenerateSettings { generator: Family::Rar, count: 4, ..GenerateSettings::url_base() };
    let job = generation::start(rar, settings, Input::Fresh, egui::Context::default());
    wait_until("a few tokens", || job.progress().steps_done >= 3 || job.progress().status != JobStatus::Running);
    assert_eq!(job.progress().status, JobStatus::Running, "the generation ended before the loss");
    lose(&compute);
    wait_until("the generation to end", || job.progress().status != JobStatus::Running);
    let JobStatus::Failed(message) = job.progress().status.clone() else { panic!("{:?}", job.progress().status) };
    assert!(message.contains("GPU device was lost"), "{message}");

    // A training run on another device, lost after its second transformer step (the first
    // transformer step is saved, on Save now).
    let compute = gpu_compute();
    let dir = tempfile::tempdir().unwrap();
    let request = TrainRequest {
        dataset: Arc::new(Mnist::train()),
        family: Family::Var,
        preset: VarPreset::Tiny,
        tokenizer_steps: 2,
        transformer_steps: 50,
        seed: 0,
        batch: Some(4),
        resume: None,
        run_name: "lost".into(),
        out_dir: Some(dir.path().to_path_buf()),
        save_every_s: 1e9,
        samples_every: 1000,
    };
    let job = TrainJob::new(&request);
    let after_each_step = || {
        let p = job.progress();
        let (phase, step) = (p.phase, p.step);
        drop(p);
        if phase == Phase::Transformer && step == 1 {
            job.save_now();
        } else if phase == Phase::Transformer && step >= 2 && !compute.is_lost() {
            lose(&compute);
        }
    };
    let e = format!("{:#}", pollster::block_on(training::run(&request, &compute.device, &job, &after_each_step)).unwrap_err());
    assert!(e.contains("GPU device was lost") && e.contains("checkpoints saved so far are kept"), "{e}");
    let p = job.progress().clone();
    assert_eq!((p.phase, p.step), (Phase::Transformer, 2), "the run stopped at the loss");
    // The checkpoints saved before the loss are listed and on disk, readable.
    let listed: Vec<_> = p.checkpoints.iter().map(|c| (c.phase, c.step)).collect();
    assert!(listed.contains(&(Phase::Transformer, 1)) && listed.contains(&(Phase::Tokenizer, 2)), "{listed:?}");
    assert_eq!(Checkpoint::load(&dir.path().join("tokenizer.ckpt")).unwrap().header.step, 2);
    assert_eq!(Checkpoint::load(&dir.path().join("var.ckpt")).unwrap().header.step, 1);
}

/// Destroys the GPU device and waits until wgpu reports it lost (with work in flight, wgpu calls
/// the device-lost callback once that work has been retired).
fn lose(compute: &Compute) {
    let wgpu_device = compute.wgpu_device().unwrap();
    wgpu_device.destroy();
    wait_until("the device-lost callback", || {
        let _ = wgpu_device.poll(burn::backend::wgpu::wgpu::PollType::Poll);
        compute.is_lost()
    });
}
