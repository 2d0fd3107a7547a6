//! `tessera` with no command: the app window, or a clear word on why there is none.

use anyhow::{Context, bail};

const NO_WINDOW_HINT: &str = "Without a window you can still use the headless commands \
(`tessera info`, `tessera data preview ...`; see `tessera --help`), or build the browser app \
(`bash scripts/build-web.sh` then `bash scripts/serve-web.sh`, see README.md).";

/// Opens the window; `link` is a shared link's query (`?generator=var&class=3&autorun=1`).
pub fn run(link: Option<String>) -> anyhow::Result<()> {
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        bail!("no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the app window cannot open.\n{NO_WINDOW_HINT}");
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Tessera")
            .with_inner_size([1280.0, 820.0])
            .with_min_inner_size([720.0, 480.0]),
        wgpu_options: crate::gpu_setup::wgpu_configuration(),
        ..Default::default()
    };
    eframe::run_native("Tessera", options, Box::new(move |cc| Ok(Box::new(crate::app::TesseraApp::with_query(cc, link.as_deref())))))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("the app window could not open.\n{NO_WINDOW_HINT}"))
}
