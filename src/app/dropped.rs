//! Files dropped on the window: read at once on the desktop, asynchronously in the browser (where
//! a dropped file's bytes come from a promise), and handed to the panel through a shared slot.

use std::sync::{Arc, Mutex};

/// A dropped file's name and contents, or why it could not be read.
pub type DroppedBytes = anyhow::Result<(String, Vec<u8>)>;

/// Files read so far, waiting for their panel.
pub type Inbox = Arc<Mutex<Vec<DroppedBytes>>>;

/// Reads every file dropped on the window this frame into `inbox` (the browser's later).
pub fn collect(ctx: &egui::Context, inbox: &Inbox) {
    for file in ctx.input(|i| i.raw.dropped_files.clone()) {
        let name = file.path().file_name().map_or_else(|| file.path().display().to_string(), |n| n.to_string_lossy().into_owned());
        #[cfg(not(target_arch = "wasm32"))]
        {
            if file.path().is_dir() {
                continue; // folders are for the Train panel's dataset, by path
            }
            let read = file.bytes().map_err(|e| anyhow::anyhow!("reading {name}: {e}"));
            lock(inbox).push(read.map(|bytes| (name, bytes)));
        }
        #[cfg(target_arch = "wasm32")]
        {
            let (inbox, ctx) = (inbox.clone(), ctx.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let read = file.bytes_async().await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"));
                lock(&inbox).push(read.map(|bytes| (name, bytes)));
                ctx.request_repaint();
            });
        }
    }
}

/// Takes what has arrived.
pub fn take(inbox: &Inbox) -> Vec<DroppedBytes> {
    std::mem::take(&mut *lock(inbox))
}

fn lock(inbox: &Inbox) -> std::sync::MutexGuard<'_, Vec<DroppedBytes>> {
    inbox.lock().unwrap_or_else(|p| p.into_inner())
}
