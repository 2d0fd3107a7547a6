//! The Train tab's own-pictures path in the real app, headless (egui_kittest, CPU backend): type a
//! folder with one subfolder per class, load it, see its classes and the files it skipped.

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

#[test]
fn a_folder_of_pictures_loads_as_a_dataset_and_lists_the_files_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cats", 40u8), ("dogs", 200u8)] {
        let sub = dir.path().join(class);
        std::fs::create_dir(&sub).unwrap();
        for i in 0..3u8 {
            let picture = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([shade, (x * 6) as u8, (y * 8) as u8 ^ i]));
            picture.save(sub.join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.path().join("cats/notes.txt"), "not a picture").unwrap();
    std::fs::write(dir.path().join("dogs/broken.png"), b"\x89PNG but not really").unwrap();

    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    harness.get_by_label("My pictures").click();
    harness.run_steps(2);
    let field = harness.get_by_role_and_label(Role::TextInput, "folder");
    field.focus();
    field.type_text(&dir.path().display().to_string());
    harness.run_steps(2);
    harness.get_by_label("Load folder").click();
    wait_for(&mut harness, "the folder's summary", |h| shows(h, "6 images in 2 classes (cats, dogs)"));
    assert!(shows(&harness, "3x32x32"), "RGB pictures resized to the preset's 32 px");
    assert!(shows(&harness, "2 file(s) skipped"), "the text file and the broken PNG are reported");
    // And training can start on it (the estimate runs on this dataset).
    wait_for(&mut harness, "the time estimate", |h| shows(h, "per transformer step)"));
}
