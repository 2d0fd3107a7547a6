//! The Train panel's checkpoint list: the run's own, dropped files, the browser's stored ones and
//! (on the desktop) the newest earlier runs, of any family (VAR, RAR, the column generator); each can be
//! downloaded, resumed or removed, and a transformer with its tokenizer can go to the Generate tab.

use burn::prelude::Device;
use tessera_kernels::Compute;

use crate::app::{dropped, export};
use crate::app::training::{self, Phase, SavedCheckpoint, TrainJob};
use super::TrainPanel;

impl TrainPanel {
    /// Lists a checkpoint read from `place_prefix` + its name, or says why not.
    pub(super) fn add_checkpoint(&mut self, read: dropped::DroppedBytes, place_prefix: &str) {
        let checked = read
            .map_err(|e| format!("{e:#}"))
            .and_then(|(name, bytes)| SavedCheckpoint::uploaded(&name, bytes, format!("{place_prefix}{name}")));
        match checked {
            Ok(c) => {
                self.message = Some(Ok(format!("{}: {} at step {}", c.place, c.phase.label(), c.step)));
                // One of each kind from each place; the run's own come on top of these.
                self.uploaded.retain(|u| !(u.phase == c.phase && u.place == c.place));
                self.uploaded.push(c);
            }
            Err(e) => self.message = Some(Err(e)),
        }
    }

    /// Starts reading the checkpoints of earlier sessions: the browser's stored ones, or on the
    /// desktop the newest runs under the runs folder (read on a thread; checked like dropped files).
    pub fn load_stored(&self, ctx: &egui::Context) {
        #[cfg(target_arch = "wasm32")]
        {
            let (inbox, ctx) = (self.stored.clone(), ctx.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let names = match crate::web::storage::list().await {
                    Ok(names) => names,
                    Err(e) => return log::warn!("could not list the stored checkpoints: {e}"),
                };
                for name in names.into_iter().filter(|n| n.ends_with(".ckpt")) {
                    let read = crate::web::storage::load(&name).await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"));
                    inbox.lock().unwrap_or_else(|p| p.into_inner()).push(read.map(|bytes| (name, bytes)));
                }
                ctx.request_repaint();
            });
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (inbox, ctx) = (self.stored.clone(), ctx.clone());
            std::thread::spawn(move || {
                for path in earlier_checkpoints(&runs_dir(), EARLIER_RUNS_LISTED) {
                    let read = std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()));
                    inbox.lock().unwrap_or_else(|p| p.into_inner()).push(read.map(|bytes| (path.display().to_string(), bytes)));
                }
                ctx.request_repaint();
            });
        }
    }

    /// `compute` samples (Use in Generate, on its work device); `training_device`
    /// trains (Resume).
    pub(super) fn checkpoints_ui(&mut self, ui: &mut egui::Ui, checkpoints: &[SavedCheckpoint], compute: &Compute, training_device: &Device) {
        if checkpoints.is_empty() {
            ui.weak(format!(
                "Checkpoints are saved every {} minutes, on Save now, on Stop and at the end. Drop .ckpt files on the window to load your own.",
                self.save_every_min
            ));
            crate::app::show_outcome(ui, &self.message);
            return;
        }
        ui.label("Checkpoints:");
        let can_resume = !self.job.as_ref().is_some_and(TrainJob::is_active) && self.dataset.is_some();
        let mut resume = None;
        let mut forget = None;
        for (i, c) in checkpoints.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.label(c.describe());
                if ui.small_button("Download").clicked() {
                    self.message = Some(export::deliver(c.file_name(), "application/octet-stream", &c.bytes));
                }
                // Listed files (dropped, stored, earlier runs) come first; the run's own are kept.
                let stored = cfg!(target_arch = "wasm32") && c.place.starts_with(training::STORED_PREFIX);
                if i < self.uploaded.len() {
                    let (text, hover) = if stored {
                        ("Delete", "delete this file from the page's storage")
                    } else {
                        ("Remove", "take it off this list (the file itself stays)")
                    };
                    if ui.small_button(text).on_hover_text(hover).clicked() {
                        forget = Some(i);
                    }
                }
                let hover = "continue this run on the chosen dataset, exactly: to the end of its own schedule";
                if c.resumable && ui.add_enabled(can_resume, egui::Button::new("Resume").small()).on_hover_text(hover).clicked() {
                    resume = Some(c.clone());
                }
            });
        }
        // Which tokenizer goes with a transformer, and which transformer goes to Generate: the run's
        // own first (newest first), then the listed files in their order.
        let own = self.uploaded.len().min(checkpoints.len());
        let preferred: Vec<&SavedCheckpoint> = checkpoints[own..].iter().rev().chain(&checkpoints[..own]).collect();
        if let Some(c) = resume {
            self.resume_from(&c, &preferred, training_device, ui.ctx());
        }
        if let Some(i) = forget {
            let c = self.uploaded.remove(i);
            self.message = Some(Ok(format!("removed {}", c.describe())));
            #[cfg(target_arch = "wasm32")]
            if let Some(name) = c.place.strip_prefix(training::STORED_PREFIX).map(str::to_string) {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Err(e) = crate::web::storage::remove(&name).await {
                        log::warn!("could not delete {name}: {e}");
                    }
                });
            }
        }
        let transformer = preferred.iter().find(|c| c.phase == Phase::Transformer);
        let pair = transformer.and_then(|v| Some((v.tokenizer_among(&preferred)?, *v)));
        if let Some((t, v)) = pair
            && ui
                .button("Use in Generate")
                .on_hover_text(format!("sample in the Generate tab from {} with {}", v.describe(), t.describe()))
                .clicked()
        {
            let device = compute.work_device().0;
            match crate::shipped::load_pair(&v.bytes, &t.bytes, &device) {
                Ok(generator) => {
                    self.for_generate = Some(generator);
                    self.message = Some(Ok("the Generate tab now samples from this run".into()));
                }
                Err(e) => self.message = Some(Err(format!("{e:#}"))),
            }
        }
        crate::app::show_outcome(ui, &self.message);
    }
}

/// How many earlier runs the desktop app lists at start (newest first). Few, because a listed
/// checkpoint is held in memory (for Download and Resume) and a small-preset run's transformer
/// file is over 100 MB; older runs stay on disk and can be dropped on the window.
#[cfg(not(target_arch = "wasm32"))]
const EARLIER_RUNS_LISTED: usize = 3;

/// The checkpoints (`tokenizer.ckpt`, `var.ckpt`, `rar.ckpt`, `equivariant.ckpt`) of the `max_runs` newest run
/// folders in `dir`, newest run first; nothing when `dir` does not exist.
#[cfg(not(target_arch = "wasm32"))]
fn earlier_checkpoints(dir: &std::path::Path, max_runs: usize) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut runs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    runs.into_iter()
        .take(max_runs)
        .flat_map(|(_, run)| ["tokenizer.ckpt", "var.ckpt", "rar.ckpt", "equivariant.ckpt"].map(|f| run.join(f)))
        .filter(|p| p.is_file())
        .collect()
}

/// Where the desktop app keeps its runs: `$TESSERA_RUNS_DIR`, else `tessera-runs/` in the working
/// directory.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn runs_dir() -> std::path::PathBuf {
    std::env::var_os("TESSERA_RUNS_DIR").map_or_else(|| "tessera-runs".into(), Into::into)
}

/// `name`, or `name-2`, `name-3`, …: the first that is not yet in `runs`, so that a run started
/// in the same second as an earlier one (a quick restart) gets a folder of its own.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn fresh_run_name(runs: &std::path::Path, name: String) -> String {
    if !runs.join(&name).exists() {
        return name;
    }
    (2..).map(|n| format!("{name}-{n}")).find(|n| !runs.join(n).exists()).expect("an unused name")
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn a_run_started_in_the_same_second_gets_its_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(fresh_run_name(dir.path(), "mnist-1700000000".into()), "mnist-1700000000");
        std::fs::create_dir(dir.path().join("mnist-1700000000")).unwrap();
        assert_eq!(fresh_run_name(dir.path(), "mnist-1700000000".into()), "mnist-1700000000-2");
        std::fs::create_dir(dir.path().join("mnist-1700000000-2")).unwrap();
        assert_eq!(fresh_run_name(dir.path(), "mnist-1700000000".into()), "mnist-1700000000-3");
    }

    #[test]
    fn earlier_runs_are_listed_newest_first_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(earlier_checkpoints(&dir.path().join("absent"), 8).is_empty());
        for (i, run) in ["mnist-100", "mnist-200", "scenes-300"].iter().enumerate() {
            let run = dir.path().join(run);
            std::fs::create_dir(&run).unwrap();
            std::fs::write(run.join("tokenizer.ckpt"), b"x").unwrap();
            if i > 0 {
                std::fs::write(run.join("var.ckpt"), b"x").unwrap();
            }
            std::fs::write(run.join("notes.txt"), b"x").unwrap();
            // Distinct modification times, oldest first.
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 * (i as u64 + 1));
            filetime_set(&run, t);
        }
        std::fs::write(dir.path().join("stray.ckpt"), b"x").unwrap();
        let names = |v: Vec<std::path::PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect()
        };
        assert_eq!(
            names(earlier_checkpoints(dir.path(), 8)),
            ["scenes-300/tokenizer.ckpt", "scenes-300/var.ckpt", "mnist-200/tokenizer.ckpt", "mnist-200/var.ckpt", "mnist-100/tokenizer.ckpt"]
        );
        assert_eq!(names(earlier_checkpoints(dir.path(), 1)), ["scenes-300/tokenizer.ckpt", "scenes-300/var.ckpt"]);
    }

    fn filetime_set(path: &std::path::Path, t: std::time::SystemTime) {
        std::fs::File::open(path).unwrap().set_modified(t).unwrap();
    }
}
