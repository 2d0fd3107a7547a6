//! The MNIST digits in the app. The desktop has them compiled in; the browser downloads their
//! two files ([`tessera_data::mnist::FILES`]) the first time a panel needs them, with a progress
//! bar, and a failed download can be tried again.

/// Whether the digits can be used now. In the browser the first call starts the download; the
/// panel shows [`status_ui`] meanwhile.
pub fn ready(ctx: &egui::Context) -> bool {
    #[cfg(target_arch = "wasm32")]
    web::start(ctx);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = ctx;
    tessera_data::mnist::available()
}

/// What a panel shows where the digits will be: the download's progress, or why it failed with a
/// button to try again. Nothing once they are in.
pub fn status_ui(ui: &mut egui::Ui) {
    #[cfg(target_arch = "wasm32")]
    web::status_ui(ui);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = ui;
}

#[cfg(target_arch = "wasm32")]
mod web {
    use std::sync::Mutex;

    use crate::app::generation::Downloaded;

    enum State {
        Idle,
        Downloading(Downloaded),
        Failed(String),
    }

    static STATE: Mutex<State> = Mutex::new(State::Idle);

    fn state() -> std::sync::MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn start(ctx: &egui::Context) {
        if tessera_data::mnist::available() || !matches!(*state(), State::Idle) {
            return;
        }
        *state() = State::Downloading(Downloaded::default());
        let ctx = ctx.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let progress_ctx = ctx.clone();
            let progress = move |bytes, total| {
                // One lock: a second `state()` inside an `if let` on the first would deadlock.
                let mut now = state();
                if let State::Downloading(_) = *now {
                    *now = State::Downloading(Downloaded { bytes, total });
                }
                progress_ctx.request_repaint();
            };
            let done = crate::web::fetch_all(tessera_data::mnist::FILES, progress)
                .await
                .and_then(|[atlas, labels]| tessera_data::mnist::provide(&atlas, &labels));
            *state() = match done {
                Ok(()) => State::Idle,
                Err(e) => State::Failed(format!("could not download the MNIST digits: {e}")),
            };
            ctx.request_repaint();
        });
    }

    pub fn status_ui(ui: &mut egui::Ui) {
        let mut retry = false;
        match &*state() {
            State::Idle => {}
            State::Downloading(d) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Downloading the MNIST digits…");
                    d.bar_ui(ui, "MNIST digits");
                });
            }
            State::Failed(e) => {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                    retry = ui.button("Try again").clicked();
                });
            }
        }
        if retry {
            *state() = State::Idle;
            start(ui.ctx());
        }
    }
}
