//! What the app tells the outside world about generation and training: `window.tessera` and the address bar
//! in the browser (for automation and shareable links), the log on the desktop.

use super::generate_settings::GenerateSettings;

/// `window.tessera.state`: `loading`, `ready`, `running`, `done` or `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppState {
    Loading,
    Ready,
    Running,
    Done,
    Error,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Done => "done",
            Self::Error => "error",
        }
    }
}

/// Publishes the state, and the error text when there is one (`null` otherwise).
pub fn report_state(state: AppState, error: Option<&str>) {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsValue;
        crate::web::set_status("state", state.as_str().into());
        crate::web::set_status("error", error.map_or(JsValue::NULL, JsValue::from));
    }
    #[cfg(not(target_arch = "wasm32"))]
    match error {
        Some(e) => log::error!("state {}: {e}", state.as_str()),
        None => log::info!("state {}", state.as_str()),
    }
}

/// The latest finished generation, with its first image as a PNG data URL.
pub struct LastResult<'a> {
    pub settings: &'a GenerateSettings,
    /// The shipped pair it came from (`columns-scenes`), or `own` (trained or dropped).
    pub model: &'a str,
    pub width: usize,
    pub height: usize,
    pub ms: f64,
    /// Where it was computed.
    pub device: String,
    pub png_data_url: String,
}

pub fn report_last(last: LastResult<'_>) {
    #[cfg(target_arch = "wasm32")]
    crate::web::set_last(&[
        ("generator", last.settings.generator.key().into()),
        ("model", last.model.into()),
        ("class", (last.settings.class as f64).into()),
        ("seed", (last.settings.seed as f64).into()),
        ("width", (last.width as f64).into()),
        ("height", (last.height as f64).into()),
        ("ms", last.ms.round().into()),
        ("device", last.device.as_str().into()),
        ("png", last.png_data_url.as_str().into()),
    ]);
    #[cfg(not(target_arch = "wasm32"))]
    log::info!(
        "generated {} ({}) class {} seed {}: {}x{} in {:.0} ms on {} ({} byte PNG data URL)",
        last.settings.generator.key(),
        last.model,
        last.settings.class,
        last.settings.seed,
        last.width,
        last.height,
        last.ms,
        last.device,
        last.png_data_url.len()
    );
}

/// Puts the link that reproduces `settings` in the address bar (browser only).
pub fn publish_query(query: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::web::replace_query(query);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = query;
}

/// A phase of the page's start-up reached: `window.tessera.timings[phase]`, milliseconds since
/// navigation began, kept from the first time only. The page marks `download` and `compile`; the
/// app `adapter` (its compute chosen), `weights` (the first shipped models loaded) and
/// `first_image` (the first generation done).
pub fn report_timing(phase: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::web::mark_timing(phase);
    #[cfg(not(target_arch = "wasm32"))]
    log::debug!("reached {phase}");
}

/// `window.tessera.lesson`: `{shown: [control keys shown], note}` while a lesson link's page
/// hides controls; `null` without a lesson or after "show all".
pub fn report_lesson(shown: &super::lesson::Shown) {
    let visible: Vec<&str> = super::lesson::Control::ALL.into_iter().filter(|&c| shown.has(c)).map(|c| c.key()).collect();
    let lesson = shown.lesson.as_ref().filter(|_| shown.hides());
    #[cfg(target_arch = "wasm32")]
    crate::web::set_status(
        "lesson",
        match lesson {
            Some(l) => {
                let object = js_sys::Object::new();
                let keys: js_sys::Array = visible.iter().map(|k| wasm_bindgen::JsValue::from(*k)).collect();
                let _ = js_sys::Reflect::set(&object, &"shown".into(), &keys);
                let _ = js_sys::Reflect::set(&object, &"note".into(), &l.note.as_str().into());
                object.into()
            }
            None => wasm_bindgen::JsValue::NULL,
        },
    );
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(l) = lesson {
        log::info!("lesson: shows {visible:?}, note {:?}", l.note);
    }
}

/// `window.tessera.checkpoints`: the checkpoints the Train tab lists, one line each.
pub fn report_checkpoints(lines: &[String]) {
    #[cfg(target_arch = "wasm32")]
    crate::web::set_status("checkpoints", lines.iter().map(|l| wasm_bindgen::JsValue::from(l.as_str())).collect::<js_sys::Array>().into());
    #[cfg(not(target_arch = "wasm32"))]
    log::info!("checkpoints: {lines:?}");
}

/// `window.tessera.training`: the Train tab's run, `training`, `paused`, `done`, `stopped` or
/// `failed` (`null` before any).
pub fn report_training(status: Option<&str>) {
    #[cfg(target_arch = "wasm32")]
    crate::web::set_status("training", status.map_or(wasm_bindgen::JsValue::NULL, wasm_bindgen::JsValue::from));
    #[cfg(not(target_arch = "wasm32"))]
    log::info!("training: {status:?}");
}

/// `window.tessera.dataset`: the Train tab's dataset, `"<name>: <n> images in <k> classes (...),
/// CxHxW; <s> file(s) skipped"`, or `"error: ..."` when loading it failed (`null` before any).
pub fn report_dataset(note: Option<&str>) {
    #[cfg(target_arch = "wasm32")]
    crate::web::set_status("dataset", note.map_or(wasm_bindgen::JsValue::NULL, wasm_bindgen::JsValue::from));
    #[cfg(not(target_arch = "wasm32"))]
    log::info!("dataset: {note:?}");
}
