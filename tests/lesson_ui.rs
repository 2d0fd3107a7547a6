//! Lesson links in the real app, headless (egui_kittest): a link shows only the controls it names,
//! with its note and the teacher's settings, until "show all"; the teacher's editor writes such a
//! link.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

/// Whether some widget is labelled exactly `label` (a slider's label is on two nodes).
fn has(harness: &Harness<'_, TesseraApp>, label: &str) -> bool {
    harness.query_all_by_label(label).next().is_some()
}

#[test]
fn a_lesson_link_shows_only_its_controls_until_show_all() {
    let link = "?v=2&generator=var&class=7&seed=3&autorun=1&lesson=seed,player&note=Try%20three%20seeds%21";
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some(link)));
    wait_for(&mut harness, "the first image", |h| shows(h, "1 image(s) in"));
    assert!(shows(&harness, "Try three seeds!"), "the note");
    assert!(has(&harness, "Next seed") && has(&harness, "Generate images"));
    // The player: the link names it, so it steps through the scales.
    assert!(has(&harness, "First"));
    for hidden in ["class", "generator", "guidance", "top-p", "images", "Train", "Edit", "Data", "Device", "Lesson…"] {
        assert!(!has(&harness, hidden), "{hidden} should be hidden");
    }
    assert_eq!(harness.state().state.generate.class, 7, "the teacher's class, although hidden");

    harness.get_by_label("show all").click();
    harness.run_steps(2);
    for back in ["class", "generator", "guidance", "Train", "Data", "Device", "Lesson…"] {
        assert!(has(&harness, back), "{back} should be back after show all");
    }
    harness.get_by_label("back to the lesson").click();
    harness.run_steps(2);
    assert!(!has(&harness, "class") && !has(&harness, "Train"));
}

#[test]
fn a_lesson_that_hides_the_train_tab_starts_no_training() {
    let link = "?v=2&generator=var&class=1&seed=1&train=2,1,4&lesson=seed";
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some(link)));
    harness.run_steps(3);
    assert!(shows(&harness, "ignored train=: the lesson hides the Train tab"));
    assert_eq!(harness.state().state.tab, tessera::app::Tab::Generate);
    let unhidden = "?v=2&generator=var&class=1&seed=1&train=2,1,4&lesson=seed,train";
    let harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some(unhidden)));
    assert_eq!(harness.state().state.tab, tessera::app::Tab::Train, "a lesson that shows Train trains");
}

#[test]
fn a_lesson_without_the_player_hides_it() {
    let link = "?v=2&generator=var&class=1&seed=1&autorun=1&lesson=class";
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some(link)));
    wait_for(&mut harness, "the first image", |h| shows(h, "1 image(s) in"));
    assert!(has(&harness, "class"));
    assert!(!has(&harness, "First") && !has(&harness, "Next seed"));
}

#[test]
fn the_editor_writes_a_link_that_opens_the_lesson() {
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some("?v=2&generator=var&class=4&seed=9")));
    harness.run_steps(2);
    harness.get_by_label("Lesson…").click();
    harness.run_steps(2);
    // The default ticks: class, seed and the player; untick the seed, tick the Data tab.
    harness.get_by_label("the seed").click();
    harness.get_by_label("the Data tab").click();
    harness.run_steps(2);
    let link = harness.query_by_label_contains("lesson=").expect("the link is shown").value().unwrap_or_default();
    assert!(link.contains("class=4") && link.contains("seed=9") && link.contains("autorun=1"), "{link}");
    assert!(link.ends_with("lesson=class,player,data"), "{link}");

    let mut student = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::with_query(cc, Some(&link)));
    student.run_steps(3);
    assert!(has(&student, "class") && has(&student, "Data"));
    assert!(!has(&student, "Next seed") && !has(&student, "Train"));
}
