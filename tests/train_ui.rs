//! The Train flow in the real app, headless (egui_kittest; the app computes on burn's CPU backend
//! without a renderer): see the run's time estimated, start training on MNIST, watch the steps
//! come in, pause, resume, stop, find the checkpoint it saved and resume from it, and find it listed
//! again after a restart. Its own test binary, because it
//! points the app's runs folder at a temporary directory through the environment.

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

#[test]
fn start_pause_resume_stop_then_resume_from_the_saved_checkpoint() {
    let runs = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary, set before the app (or any other thread) starts.
    unsafe { std::env::set_var("TESSERA_RUNS_DIR", runs.path()) };
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    assert!(shows(&harness, "mnist-train: 9000 images in 10 classes"));
    // Before starting, a step of each model is timed on this device and the run's length shown.
    wait_for(&mut harness, "the time estimate", |h| shows(h, "per transformer step)"));
    assert!(shows(&harness, "on this device"));

    harness.get_by_label("Start training").click();
    wait_for(&mut harness, "two tokenizer steps", |h| shows(h, "tokenizer step 2 of"));
    assert!(shows(&harness, "s per step"));
    harness.get_by_label("Pause").click();
    wait_for(&mut harness, "the pause", |h| shows(h, "paused: tokenizer step"));
    let paused_at = harness.query_by_label_contains("paused: tokenizer step").unwrap().value().unwrap_or_default();
    std::thread::sleep(Duration::from_millis(1500));
    harness.run_steps(3);
    assert!(shows(&harness, &paused_at), "no step while paused: {paused_at}");

    harness.get_by_label("Resume").click();
    wait_for(&mut harness, "training again", |h| !shows(h, &paused_at));
    harness.get_by_label("Stop").click();
    wait_for(&mut harness, "the stop", |h| shows(h, "stopped: tokenizer step"));
    assert!(shows(&harness, "tokenizer at step"), "the checkpoint saved on Stop is listed");
    let saved: Vec<_> = std::fs::read_dir(runs.path()).unwrap().flatten().map(|e| e.path().join("tokenizer.ckpt")).collect();
    assert!(saved.len() == 1 && saved[0].exists(), "{saved:?}");
    let stopped_at: usize = harness.query_by_label_contains("stopped: tokenizer step").unwrap().value().unwrap_or_default()
        ["stopped: tokenizer step ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // The saved checkpoint resumes: training goes on from the step it stopped at.
    harness.get_by_label("Resume").click();
    let next = format!("training: tokenizer step {} of", stopped_at + 1);
    wait_for(&mut harness, "the resumed run's next step", |h| shows(h, &next));
    harness.get_by_label("Stop").click();
    wait_for(&mut harness, "the second stop", |h| shows(h, "stopped: tokenizer step"));

    // A restarted app lists the run it left on disk, ready to resume.
    drop(harness);
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Train").click();
    // The list line reads "tokenizer at step N: <file>" (the status message names the file first).
    let listed = format!(": {}", saved[0].display());
    wait_for(&mut harness, "the earlier run's checkpoint listed", |h| shows(h, &listed));
    let line = harness.query_by_label_contains(&listed).unwrap().value().unwrap_or_default();
    assert!(line.starts_with("tokenizer at step "), "{line}");
}
