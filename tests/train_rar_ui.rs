//! The Train tab trains RAR too, in the real app, headless (egui_kittest, CPU backend): pick RAR,
//! set two steps of each model, train on MNIST, see RAR's curves (the random-order probability
//! among them), its one-figure codebook usage and its sample strip, find `tokenizer.ckpt` and
//! `rar.ckpt` in the run's folder, and send the pair to the Generate tab. Its own test binary,
//! because it points the app's runs folder at a temporary directory through the environment.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

#[test]
fn rar_trains_two_steps_of_each_model_and_goes_to_generate() {
    let runs = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary, set before the app (or any other thread) starts.
    unsafe { std::env::set_var("TESSERA_RUNS_DIR", runs.path()) };
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    assert!(shows(&harness, "mnist-train: 9000 images in 10 classes"));

    // RAR's own step counts replace VAR's; two of each will do.
    harness.get_by_label("RAR").click();
    harness.run_steps(2);
    harness.get_by_value("tokenizer steps 500").set_value_accesskit(2.0);
    harness.get_by_value("transformer steps 1000").set_value_accesskit(2.0);
    harness.run_steps(2);
    assert!(harness.query_by_value("tokenizer steps 2").is_some() && harness.query_by_value("transformer steps 2").is_some());

    harness.get_by_label("Start training").click();
    wait_for(&mut harness, "the end of the run", |h| shows(h, "done: transformer step 2 of 2"));
    assert!(shows(&harness, "random-order probability"), "RAR's annealed probability is charted");
    assert!(shows(&harness, "codebook usage:"), "the VQGAN's usage, one figure");
    assert!(shows(&harness, "samples at transformer step 2"), "the sample strip");
    assert!(shows(&harness, "RAR tokenizer at step 2: ") && shows(&harness, "RAR transformer at step 2: "), "both checkpoints listed");
    let run: Vec<_> = std::fs::read_dir(runs.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(run.len(), 1, "{run:?}");
    assert!(run[0].file_name().unwrap().to_string_lossy().starts_with("mnist-train-rar-"), "{run:?}");
    for file in ["tokenizer.ckpt", "rar.ckpt"] {
        assert!(run[0].join(file).is_file(), "{file} in {}", run[0].display());
    }

    harness.get_by_label("Use in Generate").click();
    harness.run_steps(2);
    assert!(shows(&harness, "the Generate tab now samples from this run"));
}
