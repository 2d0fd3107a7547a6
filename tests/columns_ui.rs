//! The equivariant column generator in the real app, headless (egui_kittest, CPU backend): train
//! the column pair for two steps of each model in the Train tab, drop its two checkpoints on the
//! Generate tab, generate images twice the training width and watch the canvas grow column by
//! column, Continue them to the right, step back through the columns, and continue a held-out
//! digit. Its own test binary, because it points the app's runs folder at a temporary directory
//! through the environment.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use tessera_models::family::Family;
use ui_common::{shows, wait_for};

mod ui_common;

/// A file dropped on the window, as eframe hands it over.
#[derive(Debug)]
struct Dropped {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        Ok(self.bytes.clone())
    }
}

fn drop_file(harness: &mut Harness<'_, TesseraApp>, path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped { path: path.to_path_buf(), bytes }));
    harness.run_steps(3);
}

#[test]
fn train_the_column_pair_then_generate_wide_continue_and_continue_a_digit() {
    let runs = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary, set before the app (or any other thread) starts.
    unsafe { std::env::set_var("TESSERA_RUNS_DIR", runs.path()) };
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some("?generator=columns&n=2")));
    harness.run_steps(3);
    if tessera::shipped::Shipped::of(Family::Columns).is_none() {
        assert!(shows(&harness, "has no shipped model yet"), "a family without a model says what to do");
        assert!(shows(&harness, "drop its tokenizer.ckpt and equivariant.ckpt on the window"));
    }

    // 1. Train: the column pair's own step counts replace VAR's; two of each will do.
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    assert!(shows(&harness, "mnist-train: 9000 images in 10 classes"));
    harness.get_by_label("Equivariant (columns)").click();
    harness.run_steps(2);
    harness.get_by_value("tokenizer steps 800").set_value_accesskit(2.0);
    harness.get_by_value("transformer steps 1500").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.get_by_label("Start training").click();
    wait_for(&mut harness, "the end of the run", |h| shows(h, "done: transformer step 2 of 2"));
    assert!(shows(&harness, "transformer loss (flow matching, squared error)"), "the flow loss, named as such");
    assert!(shows(&harness, "reconstruction PSNR (dB)"));
    assert!(shows(&harness, "samples at transformer step 2"), "the sample strip");
    assert!(!shows(&harness, "codebook usage"), "a continuous tokenizer has no codebook");
    assert!(shows(&harness, "Equivariant (columns) transformer at step 2: "), "both checkpoints listed");
    let run: Vec<_> = std::fs::read_dir(runs.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(run.len(), 1, "{run:?}");
    assert!(run[0].file_name().unwrap().to_string_lossy().starts_with("mnist-train-columns-"), "{run:?}");

    // 2. Generate: the pair dropped on the window, one file after the other.
    harness.get_by_label("Generate").click();
    harness.run_steps(2);
    drop_file(&mut harness, &run[0].join("tokenizer.ckpt"));
    assert!(shows(&harness, "now drop its equivariant.ckpt"));
    drop_file(&mut harness, &run[0].join("equivariant.ckpt"));
    assert!(shows(&harness, "Equivariant (columns) now samples from"));
    // Only the settings the column generator has: guidance and width, no top-k, top-p or temperature.
    assert!(shows(&harness, "order: column by column"));
    assert!(harness.query_by_label_contains("top-p").is_none() && harness.query_by_label_contains("temperature").is_none());
    assert!(shows(&harness, "trained at 8 columns (32 px)"));
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "width (columns)").set_value_accesskit(16.0);
    harness.run_steps(2);
    assert!(shows(&harness, "64 px; trained at 8 columns"), "twice the training width");

    harness.get_by_label("Generate images").click();
    wait_for(&mut harness, "2 images 16 columns wide", |h| shows(h, "2 image(s) in"));
    // The player followed the run: the last column, on a canvas 64 pixels wide.
    assert!(shows(&harness, "column 16 of 16"));
    assert!(shows(&harness, "column canvas, 16 columns made, 64x32 pixels"));

    // 3. Continue: 8 more columns (the training width) to the right, from where it stopped.
    assert!(harness.query_by_value("by 8 columns").is_some(), "by the training width");
    harness.get_by_label("Continue").click();
    wait_for(&mut harness, "8 more columns", |h| shows(h, "column 24 of 24") && shows(h, "2 image(s) in"));
    assert!(shows(&harness, "column canvas, 24 columns made, 96x32 pixels"));
    harness.get_by_label("Continue").click();
    wait_for(&mut harness, "8 more again", |h| shows(h, "column 32 of 32") && shows(h, "2 image(s) in"));
    // Back through the columns: the canvas is as wide, with fewer columns made.
    harness.key_press(egui::Key::Home);
    harness.run_steps(2);
    assert!(shows(&harness, "column 1 of 16"));
    assert!(shows(&harness, "column canvas, 1 columns made, 128x32 pixels"));
    harness.key_press(egui::Key::ArrowRight);
    harness.run_steps(2);
    assert!(shows(&harness, "column 2 of 16"));

    // 4. Continue a picture: a held-out digit's left half kept, the rest of the 16 columns drawn.
    harness.get_by_label("Continue a picture").click();
    harness.run_steps(2);
    harness.get_by_label("Held-out digit").click();
    harness.run_steps(2);
    assert!(shows(&harness, "continuing held-out digit 0"));
    assert!(harness.query_all_by_label_contains("columns kept of 8").next().is_some(), "half of the digit's 8 columns kept");
    assert!(shows(&harness, "then 12 generated, 16 in all"));
    harness.get_by_label("Continue it").click();
    wait_for(&mut harness, "the continuation", |h| shows(h, "column 16 of 16") && shows(h, "2 image(s) in"));
    harness.key_press(egui::Key::Home);
    harness.run_steps(2);
    assert!(shows(&harness, "column 5 of 16"), "the first generated column follows the 4 kept");
}
