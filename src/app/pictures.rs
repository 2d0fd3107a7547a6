//! Loading a user's pictures as a training set without freezing the window, with progress: a
//! folder or a `.zip` on the desktop (on a thread), a dropped `.zip` anywhere, and in the browser
//! the files of a folder that was dropped or chosen (an async task that yields to the page between
//! files and reads each file's bytes only when it gets to it). The rules for what counts as a
//! class and what is skipped are `tessera_data`'s, the same as `tessera train --dataset PATH`.

use std::sync::{Arc, Mutex, MutexGuard};

use tessera_data::{FolderBuilder, FolderDataset, FolderOptions, PictureZip, Skipped};

use super::generation::spawn;

/// Where the pictures come from.
pub enum PictureSource {
    /// A folder, or a `.zip` file, on this computer.
    #[cfg(not(target_arch = "wasm32"))]
    Path(std::path::PathBuf),
    /// The bytes of a `.zip` (dropped on the window, or chosen in the browser).
    Zip { name: String, bytes: Vec<u8> },
    /// A folder dropped on the page or chosen in the browser: each file's path relative to the
    /// drop (`animals/cats/1.jpg`) and its `File`, or why it could not be listed; and the folders.
    #[cfg(target_arch = "wasm32")]
    Files { name: String, files: Vec<(String, Result<wasm_bindgen::JsValue, String>)>, folders: Vec<String> },
}

impl PictureSource {
    /// A dropped or chosen file's bytes as a zip of pictures, named after the file (`pets.zip` → `pets`).
    pub fn zip(file_name: &str, bytes: Vec<u8>) -> Self {
        let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        let name = name.strip_suffix(".zip").or_else(|| name.strip_suffix(".ZIP")).unwrap_or(name);
        Self::Zip { name: name.to_string(), bytes }
    }

    fn name(&self) -> String {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Self::Path(path) => path.display().to_string(),
            Self::Zip { name, .. } => format!("{name}.zip"),
            #[cfg(target_arch = "wasm32")]
            Self::Files { name, .. } => name.clone(),
        }
    }
}

/// True for a file name that [`PictureSource::zip`] should read.
pub fn is_zip(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().ends_with(".zip")
}

/// Pictures that came in (a browser drop or a file chooser), or why they could not be taken,
/// waiting for the Train panel.
pub type Inbox = Arc<Mutex<Vec<Result<PictureSource, String>>>>;

/// The dataset, and what was skipped, or why there is none (in words).
pub type Loaded = Result<(FolderDataset, Vec<Skipped>), String>;

/// An import under way or finished, shared between its task and the panel.
#[derive(Clone)]
pub struct PictureImport(Arc<Mutex<ImportState>>);

pub struct ImportState {
    /// What is being read: a path, `pets.zip`, a folder's name.
    pub name: String,
    /// Files (or zip entries) done, out of `total` (0 while listing).
    pub done: usize,
    pub total: usize,
    /// `Some` when finished; taken by the panel.
    pub result: Option<Loaded>,
}

impl PictureImport {
    /// Starts reading `source` into a dataset of `options`' size in the background; `ctx` is
    /// asked to repaint as it goes.
    pub fn start(source: PictureSource, options: FolderOptions, ctx: &egui::Context) -> Self {
        let state = ImportState { name: source.name(), done: 0, total: 0, result: None };
        let import = Self(Arc::new(Mutex::new(state)));
        let (task, ctx) = (import.clone(), ctx.clone());
        spawn(async move {
            let result = task.read(source, options, &ctx).await;
            task.lock().result = Some(result);
            ctx.request_repaint();
        });
        import
    }

    pub fn lock(&self) -> MutexGuard<'_, ImportState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The finished result, once (`None` while it runs).
    pub fn take_result(&self) -> Option<Loaded> {
        self.lock().result.take()
    }

    fn progress(&self, ctx: &egui::Context, done: usize, total: usize) {
        let mut state = self.lock();
        (state.done, state.total) = (done, total);
        ctx.request_repaint();
    }

    async fn read(&self, source: PictureSource, options: FolderOptions, ctx: &egui::Context) -> Loaded {
        let label = source.name();
        let describe = |e: tessera_data::Error| format!("{label}: {e}");
        match source {
            #[cfg(not(target_arch = "wasm32"))]
            PictureSource::Path(path) => {
                FolderDataset::open_with_progress(&path, options, |done, total| self.progress(ctx, done, total)).map_err(describe)
            }
            PictureSource::Zip { name, bytes } => {
                let mut builder = FolderBuilder::new(options).map_err(describe)?;
                // This error names the file itself.
                let mut zip = PictureZip::new(bytes).map_err(|reason| tessera_data::Error::Zip { name: label.clone(), reason }.to_string())?;
                let mut pacer = Pacer::default();
                for index in 0..zip.len() {
                    zip.add_entry(index, &mut builder);
                    self.progress(ctx, index + 1, zip.len());
                    pacer.maybe_yield().await;
                }
                builder.finish(name).map_err(describe)
            }
            #[cfg(target_arch = "wasm32")]
            PictureSource::Files { name, files, folders } => {
                let mut builder = FolderBuilder::new(options).map_err(describe)?;
                folders.iter().for_each(|f| builder.add_folder(f));
                let mut pacer = Pacer::default();
                for (done, (path, file)) in files.iter().enumerate() {
                    let bytes = match file {
                        Ok(file) => crate::web::pictures::read(file).await,
                        Err(why) => Err(why.clone()),
                    };
                    builder.add_file(path, bytes.as_deref().map_err(Clone::clone));
                    self.progress(ctx, done + 1, files.len());
                    pacer.maybe_yield().await;
                }
                builder.finish(name).map_err(describe)
            }
        }
    }
}

/// Yields to the page about every 30 ms of work, so decoding hundreds of pictures in the browser
/// neither freezes it nor pays a timer tick per picture. (On the desktop yielding does nothing.)
#[derive(Default)]
struct Pacer {
    since: Option<web_time::Instant>,
}

impl Pacer {
    async fn maybe_yield(&mut self) {
        let since = *self.since.get_or_insert_with(web_time::Instant::now);
        if since.elapsed().as_millis() >= 30 {
            super::generation::yield_now().await;
            self.since = Some(web_time::Instant::now());
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn a_zip_is_named_after_its_file() {
        for (file, name) in [("pets.zip", "pets"), ("C:\\data\\Pets.ZIP", "Pets"), ("a/b/c.zip", "c"), ("noext", "noext")] {
            let PictureSource::Zip { name: got, .. } = PictureSource::zip(file, Vec::new()) else { unreachable!() };
            assert_eq!(got, name, "{file}");
        }
        assert!(is_zip("x.ZiP") && !is_zip("x.ckpt") && !is_zip("zip"));
    }
}
