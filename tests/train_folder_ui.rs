//! The Train tab's own-pictures path in the real app, headless (egui_kittest, CPU backend): type a
//! folder with one subfolder per class, load it, see its classes and the files it skipped; drop a
//! `.zip` of such a folder on another tab and see the Train tab open with it.

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tessera::app::TesseraApp;
use ui_common::{shows, wait_for};

mod ui_common;

/// Three PNGs each of cats and dogs, a text file and a broken PNG, as (relative path, bytes).
fn pets() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (class, shade) in [("cats", 40u8), ("dogs", 200u8)] {
        for i in 0..3u8 {
            let picture = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([shade, (x * 6) as u8, (y * 8) as u8 ^ i]));
            let mut png = std::io::Cursor::new(Vec::new());
            picture.write_to(&mut png, image::ImageFormat::Png).unwrap();
            files.push((format!("{class}/{i}.png"), png.into_inner()));
        }
    }
    files.push(("cats/notes.txt".into(), b"not a picture".to_vec()));
    files.push(("dogs/broken.png".into(), b"\x89PNG but not really".to_vec()));
    files
}

#[test]
fn a_folder_of_pictures_loads_as_a_dataset_and_lists_the_files_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in pets() {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

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

#[test]
fn a_zip_of_pictures_dropped_on_any_tab_opens_the_train_tab_with_it() {
    use std::io::Write;
    // Zipped as most tools do: one top folder, then a folder per class.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in pets() {
        zip.start_file(format!("pets/{path}"), options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();

    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Edit").click();
    harness.run_steps(2);
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped { path: "/home/me/pets.zip".into(), bytes }));
    wait_for(&mut harness, "the zip's summary", |h| shows(h, "pets: 6 images in 2 classes (cats, dogs)"));
    assert!(shows(&harness, "2 file(s) skipped"), "the text file and the broken PNG are reported");
    assert!(harness.query_by_label_contains("Start training").is_some(), "the Train tab is open");

    // A damaged zip gets a clear message and no dataset.
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped { path: "cut.zip".into(), bytes: b"PK\x03\x04 cut short".to_vec() }));
    wait_for(&mut harness, "the damaged zip's message", |h| shows(h, "cut.zip is not a readable zip archive of pictures"));
}

#[test]
fn a_dropped_checkpoint_is_listed_and_can_be_removed_from_the_list() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/var-tiny/tokenizer.ckpt")).unwrap();
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| TesseraApp::new(cc));
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped { path: "/tmp/x/tokenizer.ckpt".into(), bytes: bytes.clone() }));
    wait_for(&mut harness, "the dropped checkpoint", |h| shows(h, "tokenizer at step 500: dropped file tokenizer.ckpt"));
    // A file that is not a checkpoint is refused with its name.
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped { path: "notes.ckpt".into(), bytes: bytes[..100].to_vec() }));
    wait_for(&mut harness, "the refusal", |h| shows(h, "notes.ckpt is not a usable checkpoint"));

    harness.get_by_label("Remove").click();
    harness.run_steps(3);
    assert!(shows(&harness, "removed tokenizer at step 500: dropped file tokenizer.ckpt"));
    // The message is now the only text that names it.
    assert_eq!(harness.query_all_by_label_contains("tokenizer at step 500: dropped file").count(), 1, "it is off the list");
}
