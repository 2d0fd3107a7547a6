//! The Generate flow in the real app, headless (egui_kittest, no GPU needed: without a wgpu
//! renderer the app computes on burn's CPU backend): the shipped models load in the background,
//! "Generate images" draws a grid, and the player steps through the scales by keyboard and buttons;
//! the Edit tab paints a region over a held-out digit and out-paints it.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

#[test]
fn generate_a_grid_then_step_through_the_scales() {
    let mut harness = Harness::builder()
        .with_size([1280.0, 1000.0])
        .build_eframe(|cc| TesseraApp::with_query(cc, Some("?v=1&generator=var&class=3&seed=1&n=3")));
    wait_for(&mut harness, "the models to load", |h| !shows(h, "Loading the shipped models"));
    assert!(!shows(&harness, "Could not load"), "the shipped models should load");
    assert!(shows(&harness, "Press Generate images"));

    harness.get_by_label("Generate images").click();
    wait_for(&mut harness, "3 images", |h| shows(h, "3 image(s) in"));
    // The player follows generation live, so it ends on the last scale of the first image.
    assert!(shows(&harness, "Image 1"));
    assert!(shows(&harness, "scale 7 of 7 · 8×8"));

    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    assert!(shows(&harness, "scale 6 of 7 · 6×6"));
    harness.key_press(egui::Key::Home);
    harness.run_steps(2);
    assert!(shows(&harness, "scale 1 of 7 · 1×1"));
    harness.get_by_label("Forward").click();
    harness.run_steps(2);
    assert!(shows(&harness, "scale 2 of 7 · 2×2"));

    harness.key_press(egui::Key::Space);
    harness.run_steps(2);
    assert!(harness.query_by_label("Pause").is_some(), "Space starts playback");
    wait_for(&mut harness, "playback to reach the last scale", |h| shows(h, "scale 7 of 7"));
    wait_for(&mut harness, "playback to stop", |h| h.query_by_label("Play").is_some());
}

#[test]
fn paint_a_region_and_edit_a_held_out_digit() {
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Edit").click();
    wait_for(&mut harness, "the models to load", |h| h.query_by_label("Held-out digit").is_some());
    harness.get_by_label("Held-out digit").click();
    harness.run_steps(2);
    assert!(shows(&harness, "editing held-out digit 0"));
    // The default region is the centre box; clear it and paint a stroke instead.
    assert!(shows(&harness, "256 of 1024 pixels painted"));
    harness.get_by_label("Clear").click();
    harness.run_steps(2);
    assert!(shows(&harness, "0 of 1024 pixels painted"));
    let canvas = harness.get_by_label("mask canvas").rect();
    let (from, to) = (canvas.lerp_inside(egui::vec2(0.3, 0.5)), canvas.lerp_inside(egui::vec2(0.7, 0.5)));
    harness.hover_at(from);
    harness.drag_at(from);
    harness.run_steps(2);
    for t in 1..=8 {
        harness.hover_at(from.lerp(to, t as f32 / 8.0));
        harness.run_steps(1);
    }
    harness.drop_at(to);
    harness.run_steps(2);
    let painted = harness.query_by_label_contains("pixels painted").unwrap().value().unwrap_or_default();
    let count: usize = painted.split(' ').next().unwrap().parse().unwrap();
    assert!((40..400).contains(&count), "a stroke across the middle painted {count} pixels");

    harness.get_by_label("Out-paint").click();
    harness.get_by_label("Apply edit").click();
    wait_for(&mut harness, "the edits", |h| shows(h, "edit(s) in"));
    assert!(shows(&harness, "4 edit(s) in"));
    harness.get_all_by_label("Edit this").next().unwrap().click();
    harness.run_steps(2);
    assert!(shows(&harness, "editing edit 1"));
}

#[test]
fn a_lost_gpu_is_reported_and_work_goes_on_on_the_cpu() {
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some("?class=5&seed=2")));
    wait_for(&mut harness, "the models to load", |h| !shows(h, "Loading the shipped models"));
    // What wgpu's device-lost callback does (a headless test has no GPU to lose).
    harness.state_mut().compute.mark_lost();
    harness.run_steps(2);
    assert!(shows(&harness, "The GPU device was lost"), "the banner says so");
    assert!(shows(&harness, "Checkpoints already saved are in the runs folder"), "and what is safe");

    harness.get_by_label("Continue on the CPU").click();
    harness.run_steps(2);
    wait_for(&mut harness, "the models to load on the CPU", |h| !shows(h, "Loading the shipped models"));
    assert!(!shows(&harness, "The GPU device was lost"), "the banner is gone");
    assert!(shows(&harness, "computing on the CPU because the GPU device was lost"), "the notice says why");
    harness.get_by_label("Generate images").click();
    wait_for(&mut harness, "an image on the CPU", |h| shows(h, "1 image(s) in"));
}
