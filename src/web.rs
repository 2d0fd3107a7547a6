//! The browser entry: starts the app on the page's canvas and keeps `window.tessera` current,
//! the object end-to-end tests (and curious users) read: `state`, `error`, `adapter`.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Sets one field of `window.tessera` (created on first use).
pub fn set_status(key: &str, value: JsValue) {
    let Some(window) = web_sys::window() else { return };
    let status = js_sys::Reflect::get(&window, &"tessera".into())
        .ok()
        .filter(|v| v.is_object())
        .unwrap_or_else(|| {
            let obj: JsValue = js_sys::Object::new().into();
            let _ = js_sys::Reflect::set(&window, &"tessera".into(), &obj);
            obj
        });
    let _ = js_sys::Reflect::set(&status, &key.into(), &value);
}

fn fail(message: &str) {
    log::error!("{message}");
    set_status("state", "error".into());
    set_status("error", message.into());
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("tessera_message"))
    {
        el.set_text_content(Some(message));
        let _ = el.dyn_into::<web_sys::HtmlElement>().map(|e| e.style().set_property("display", "block"));
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    let _ = eframe::WebLogger::init(log::LevelFilter::Info);
    set_status("state", "loading".into());
    set_status("error", JsValue::NULL);
    let options = eframe::WebOptions { wgpu_options: crate::gpu_setup::wgpu_configuration(), ..Default::default() };
    wasm_bindgen_futures::spawn_local(async move {
        let Some(canvas) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("tessera_canvas"))
            .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok())
        else {
            return fail("the page has no <canvas id=\"tessera_canvas\">");
        };
        let started = eframe::WebRunner::new()
            .start(
                canvas,
                options,
                Box::new(|cc| {
                    let app = crate::app::TesseraApp::new(cc);
                    set_status("adapter", app.compute.describe().into());
                    if let Some(notice) = &app.compute.notice {
                        set_status("notice", notice.as_str().into());
                    }
                    Ok(Box::new(app))
                }),
            )
            .await;
        match started {
            Ok(()) => {
                set_status("state", "ready".into());
                if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("tessera_loading")) {
                    el.remove();
                }
            }
            Err(e) => fail(&format!("Tessera could not start: {e:?}")),
        }
    });
}
