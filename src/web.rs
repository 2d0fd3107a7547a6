//! The browser entry: starts the app on the page's canvas and keeps `window.tessera` current,
//! the object end-to-end tests (and curious users) read: `state` (`loading`, `ready`, `running`,
//! `done`, `error`), `error`, `adapter`, `notice`, and `last`, the latest generation:
//! `{generator, class, seed, width, height, ms, device, png}` with `png` a `data:image/png;base64,...`
//! URL of its first image at native resolution; `training`, the Train tab's run (`training`,
//! `paused`, `done`, `stopped`, `failed`); `checkpoints`, the checkpoints the Train tab lists
//! (`"<phase> at step <n>: <where>"`); `lesson`, a lesson link's shown controls and note; `timings`, milliseconds from navigation to each start-up
//! phase (`download`, `compile`, `adapter`, `weights`, `first_image`). The app sets `state` from `ready` on (once the models are
//! loaded); this file sets `loading` and start-up errors, and keeps the browser's checkpoint
//! storage ([`storage`]).

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

/// `window.tessera.timings[phase]` = `performance.now()` (ms since navigation began), unless the
/// phase is already there; index.html marks its own phases the same way.
pub fn mark_timing(phase: &str) {
    let mark = js_sys::Function::new_with_args(
        "p",
        "const t = (window.tessera ||= {}); t.timings ||= {}; if (!(p in t.timings)) t.timings[p] = Math.round(performance.now());",
    );
    if let Err(e) = mark.call1(&JsValue::NULL, &phase.into()) {
        log::warn!("could not record the {phase} timing: {e:?}");
    }
}

/// Sets `window.tessera.last` to an object of `(key, value)` fields.
pub fn set_last(fields: &[(&str, JsValue)]) {
    let last = js_sys::Object::new();
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&last, &(*key).into(), value);
    }
    set_status("last", last.into());
}

/// The page's address without its query: where a lesson link points.
pub fn page_address() -> String {
    web_sys::window()
        .and_then(|w| Some(w.location().origin().ok()? + &w.location().pathname().ok()?))
        .unwrap_or_default()
}

/// The page's query string, without the `?`.
pub fn query() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .map(|s| s.trim_start_matches('?').to_string())
        .unwrap_or_default()
}

/// Replaces the page's query string without reloading, so the address bar always holds a link
/// that reproduces what is on screen. (Through a tiny JS function: `History` is not among the
/// web-sys features the crate enables, and adding one rebuilds wgpu and eframe for wasm32.)
pub fn replace_query(query: &str) {
    let replace = js_sys::Function::new_with_args("q", "history.replaceState(history.state, '', '?' + q)");
    if let Err(e) = replace.call1(&JsValue::NULL, &query.into()) {
        log::warn!("could not update the address bar: {e:?}");
    }
}

/// Offers `bytes` as a file download named `name` (a data URL on a temporary link).
pub fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    use base64::Engine;
    let url = format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes));
    let click = js_sys::Function::new_with_args(
        "url, name",
        "const a = document.createElement('a'); a.href = url; a.download = name; \
         document.body.appendChild(a); a.click(); a.remove();",
    );
    click.call2(&JsValue::NULL, &url.into(), &name.into()).map(|_| ()).map_err(|e| format!("the download failed: {e:?}"))
}

/// Downloads `paths` (relative to the page) in parallel, calling `progress(bytes, total)` with
/// the sums as they arrive; `total` adds up the servers' Content-Length (0 while unknown).
pub async fn fetch_all<const N: usize>(paths: [&str; N], progress: impl Fn(u64, u64) + 'static) -> Result<[Vec<u8>; N], String> {
    let body = "const got = paths.map(() => 0), sizes = paths.map(() => 0);
        const sum = (a) => a.reduce((x, y) => x + y, 0);
        const one = async (path, i) => {
            const response = await fetch(path);
            if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${response.statusText}`);
            // A compressed response's length is not the file's: no total then.
            sizes[i] = response.headers.get('content-encoding') ? 0 : Number(response.headers.get('content-length')) || 0;
            const reader = response.body.getReader(), chunks = [];
            for (;;) {
                const { done, value } = await reader.read();
                if (done) break;
                chunks.push(value);
                got[i] += value.length;
                progress(sum(got), sum(sizes));
            }
            const bytes = new Uint8Array(got[i]);
            let at = 0;
            for (const c of chunks) { bytes.set(c, at); at += c.length; }
            return bytes;
        };
        return Promise.all(paths.map(one));";
    let describe = |e: JsValue| e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()));
    // Kept alive until the downloads end.
    let progress = Closure::<dyn Fn(f64, f64)>::new(move |bytes: f64, total: f64| progress(bytes as u64, total as u64));
    let list: js_sys::Array = paths.iter().map(|p| JsValue::from(*p)).collect();
    let promise = js_sys::Function::new_with_args("paths, progress", body).call2(&JsValue::NULL, &list, progress.as_ref()).map_err(describe)?;
    let files = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await.map_err(describe)?;
    let files = js_sys::Array::from(&files);
    Ok(std::array::from_fn(|i| js_sys::Uint8Array::new(&files.get(i as u32)).to_vec()))
}

/// The page's origin-private file system (OPFS), where the app keeps checkpoints so that a reload
/// finds them. Each call runs a small JS function and awaits its promise (no synchronous access).
pub mod storage {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;

    async fn run(args: &str, body: &str, values: &[JsValue]) -> Result<JsValue, String> {
        let f = js_sys::Function::new_with_args(args, body);
        let promise = match values {
            [] => f.call0(&JsValue::NULL),
            [a] => f.call1(&JsValue::NULL, a),
            [a, b] => f.call2(&JsValue::NULL, a, b),
            _ => unreachable!("at most two arguments"),
        }
        .map_err(|e| format!("{e:?}"))?;
        JsFuture::from(js_sys::Promise::from(promise)).await.map_err(|e| format!("browser storage: {e:?}"))
    }

    /// Writes `bytes` as file `name`, replacing any file of that name.
    pub async fn save(name: &str, bytes: &[u8]) -> Result<(), String> {
        let body = "return navigator.storage.getDirectory().then(async (dir) => {                     const file = await dir.getFileHandle(name, { create: true });                     const out = await file.createWritable(); await out.write(bytes); await out.close(); })";
        run("name, bytes", body, &[name.into(), js_sys::Uint8Array::from(bytes).into()]).await.map(|_| ())
    }

    /// The names of the stored files.
    pub async fn list() -> Result<Vec<String>, String> {
        let body = "return navigator.storage.getDirectory().then(async (dir) => {                     const names = []; for await (const name of dir.keys()) names.push(name); return names; })";
        let names = run("", body, &[]).await?;
        Ok(js_sys::Array::from(&names).iter().filter_map(|n| n.as_string()).collect())
    }

    /// Deletes file `name`.
    pub async fn remove(name: &str) -> Result<(), String> {
        let body = "return navigator.storage.getDirectory().then((dir) => dir.removeEntry(name))";
        run("name", body, &[name.into()]).await.map(|_| ())
    }

    /// The contents of file `name`.
    pub async fn load(name: &str) -> Result<Vec<u8>, String> {
        let body = "return navigator.storage.getDirectory().then(async (dir) =>                     new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer()))";
        let bytes = run("name", body, &[name.into()]).await?;
        Ok(js_sys::Uint8Array::new(&bytes).to_vec())
    }
}

/// A user's pictures in the browser: the folder or zip chooser, folders dropped on the page (which
/// eframe does not read: it only sees files), and reading a `File`'s bytes. All asynchronous.
pub mod pictures {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;

    use crate::app::pictures::{Inbox, PictureSource};

    /// Opens the browser's chooser for a folder (`folder`) or a `.zip`; `None` if the user cancels.
    /// A zip is read at once (one file); a folder's files are read later, one at a time.
    pub async fn choose(folder: bool) -> Result<Option<PictureSource>, String> {
        let body = "return new Promise((resolve) => {
            const input = document.createElement('input');
            input.type = 'file';
            if (folder) { input.webkitdirectory = true; input.multiple = true; } else { input.accept = '.zip,application/zip'; }
            input.style.display = 'none';
            document.body.appendChild(input);
            input.addEventListener('change', () => { const files = Array.from(input.files); input.remove(); resolve(files); });
            input.addEventListener('cancel', () => { input.remove(); resolve(null); });
            input.click();
        })";
        let chosen = JsFuture::from(js_sys::Promise::from(js_sys::Function::new_with_args("folder", body).call1(&JsValue::NULL, &folder.into()).map_err(|e| format!("{e:?}"))?))
            .await
            .map_err(|e| format!("the file chooser failed: {e:?}"))?;
        if chosen.is_null() {
            return Ok(None);
        }
        let files: Vec<JsValue> = js_sys::Array::from(&chosen).iter().collect();
        let path_of = |f: &JsValue| {
            let relative = js_sys::Reflect::get(f, &"webkitRelativePath".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
            if relative.is_empty() { js_sys::Reflect::get(f, &"name".into()).ok().and_then(|v| v.as_string()).unwrap_or_default() } else { relative }
        };
        if !folder {
            let Some(file) = files.first() else { return Ok(None) };
            return Ok(Some(PictureSource::zip(&path_of(file), read(file).await?)));
        }
        let files: Vec<(String, Result<JsValue, String>)> = files.iter().map(|f| (path_of(f), Ok(f.clone()))).collect();
        // The chosen folder is every path's first component.
        let name = files.first().and_then(|(p, _)| p.split('/').next()).unwrap_or("pictures").to_string();
        if files.is_empty() {
            return Err("the chosen folder has no files".into());
        }
        Ok(Some(PictureSource::Files { name, files, folders: Vec::new() }))
    }

    /// The bytes of a `File`.
    pub async fn read(file: &JsValue) -> Result<Vec<u8>, String> {
        let read = js_sys::Function::new_with_args("f", "return f.arrayBuffer().then((b) => new Uint8Array(b))");
        let promise = read.call1(&JsValue::NULL, file).map_err(|e| format!("{e:?}"))?;
        let bytes = JsFuture::from(js_sys::Promise::from(promise)).await.map_err(|e| format!("cannot read ({e:?})"))?;
        Ok(js_sys::Uint8Array::new(&bytes).to_vec())
    }

    /// From now on, a folder dropped anywhere on the page is walked (every file below it, by the
    /// File System Entries API) and put in `inbox`. Drops of plain files are left to eframe, which
    /// hands them to the panels (checkpoints, a `.zip`, a picture to edit).
    pub fn listen_for_folder_drops(ctx: &egui::Context, inbox: Inbox) {
        let ctx = ctx.clone();
        let deliver = Closure::<dyn Fn(JsValue)>::new(move |walked: JsValue| {
            let (ctx, inbox) = (ctx.clone(), inbox.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match JsFuture::from(js_sys::Promise::from(walked)).await {
                    Ok(drop) => {
                        let field = |k: &str| js_sys::Reflect::get(&drop, &k.into()).unwrap_or(JsValue::UNDEFINED);
                        let name = field("name").as_string().unwrap_or_else(|| "pictures".into());
                        let files = js_sys::Array::from(&field("files"))
                            .iter()
                            .map(|pair| {
                                let pair = js_sys::Array::from(&pair);
                                let (path, file) = (pair.get(0).as_string().unwrap_or_default(), pair.get(1));
                                (path, if file.is_string() { Err(file.as_string().unwrap_or_default()) } else { Ok(file) })
                            })
                            .collect();
                        let folders = js_sys::Array::from(&field("folders")).iter().filter_map(|f| f.as_string()).collect();
                        inbox.lock().unwrap_or_else(|p| p.into_inner()).push(Ok(PictureSource::Files { name, files, folders }));
                    }
                    Err(e) => inbox.lock().unwrap_or_else(|p| p.into_inner()).push(Err(format!("could not read the dropped folder: {e:?}"))),
                }
                ctx.request_repaint();
            });
        });
        // Capture phase on the window: it runs before eframe's listener on the canvas, which
        // would take a folder for an unreadable file. Entries must be taken during the event.
        let install = js_sys::Function::new_with_args(
            "deliver",
            "window.addEventListener('drop', (event) => {
                const items = event.dataTransfer ? Array.from(event.dataTransfer.items || []) : [];
                const entries = items.filter((i) => i.kind === 'file' && i.webkitGetAsEntry).map((i) => i.webkitGetAsEntry()).filter((e) => e);
                if (!entries.some((e) => e.isDirectory)) return;
                event.preventDefault();
                event.stopPropagation();
                const canvas = document.getElementById('tessera_canvas');
                if (canvas) canvas.dispatchEvent(new DragEvent('dragleave'));
                const files = [], folders = [];
                const batch = (reader) => new Promise((ok, fail) => reader.readEntries(ok, fail));
                const walk = async (entry, path) => {
                    if (entry.isDirectory) {
                        folders.push(path);
                        const reader = entry.createReader();
                        for (let b = await batch(reader); b.length; b = await batch(reader)) {
                            for (const child of b) await walk(child, path + '/' + child.name);
                        }
                    } else {
                        try { files.push([path, await new Promise((ok, fail) => entry.file(ok, fail))]); }
                        catch (e) { files.push([path, String(e && e.message || e)]); }
                    }
                };
                const name = entries.length === 1 ? entries[0].name : 'pictures';
                deliver(Promise.all(entries.map((e) => walk(e, e.name))).then(() => ({ name, files, folders })));
            }, true);",
        );
        if let Err(e) = install.call1(&JsValue::NULL, deliver.as_ref()) {
            log::warn!("dropping folders will not work: {e:?}");
        }
        deliver.forget(); // the listener lives as long as the page
    }
}

fn fail(message: &str) {
    log::error!("{message}");
    set_status("state", "error".into());
    set_status("error", message.into());
    show_message(message);
}

/// Shows `message` in the page's alert box above the canvas (which may no longer draw: a lost
/// GPU device takes egui's drawing with it).
pub fn show_message(message: &str) {
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
                    let app = crate::app::TesseraApp::with_query(cc, Some(&query()));
                    mark_timing("adapter");
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
                // `state` becomes `ready` when the app has loaded its models.
                if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("tessera_loading")) {
                    el.remove();
                }
            }
            Err(e) => fail(&format!("Tessera could not start: {e:?}")),
        }
    });
}
