//! Shared by the app's UI tests (egui_kittest): waiting for background work, finding text.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;

/// Steps frames until `done` holds (models load, images generate and training runs on other
/// threads), failing after five minutes.
pub fn wait_for(harness: &mut Harness<'_, TesseraApp>, what: &str, done: impl Fn(&Harness<'_, TesseraApp>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(harness) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
}

/// Whether some widget's text contains `text`.
pub fn shows(harness: &Harness<'_, TesseraApp>, text: &str) -> bool {
    harness.query_by_label_contains(text).is_some()
}
