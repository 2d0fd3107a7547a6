// Browser end-to-end check of the built web app (web/dist) in headless Chromium.
//
// Serves web/dist on a free localhost port (a secure context, so WebGPU is allowed), opens the
// automation URL `?generator=var&class=3&seed=1&autorun=1`, waits for window.tessera.state to be
// "done", then checks window.tessera.last: the settings it reports, and that its PNG decodes to a
// non-blank 32x32 image (a digit: some ink on a dark ground); then the same with generator=rar. Then puts a checkpoint (and a
// damaged one) in the page's storage, reloads, and checks window.tessera.checkpoints lists the good
// one only. Then the user's own pictures: drops a .zip of a folder of pictures on the page and
// checks the dataset it makes (window.tessera.dataset); drops the folder itself (as the OS would,
// through DevTools' drag events) on a `train=2,1,4&dataset=pictures` link, which trains a tiny run
// on it, and checks the run's checkpoints survive a reload; then a `generator=rar&train=2,1,4`
// link trains RAR on MNIST. The equivariant column generator: a
// `generator=columns&model=columns-scenes&width=64&autorun=1` link draws a landscape 8x wider than
// the shipped scenes pair's training width, and a
// `generator=columns&train=2,1,4` link trains the column pair in the page. On a software adapter
// such as SwiftShader the app samples and trains on the CPU backend, several times faster; a
// `device=gpu` link then keeps one VAR digit on the adapter, which runs the WGSL kernels in the
// browser. The page's start-up timings are printed and checked for order; after the first visit
// the wasm and the models come from the service worker's offline copy (the server sees no request
// for them), with the network off the page still opens and draws, and a new build's worker
// replaces the old build's cache. The code bundle's gzipped size is printed and held to a budget;
// the models are not in it. A lesson link shows only the controls it names, also after a reload.
// Fails on any console error or uncaught page error.
// Exit code 0 = pass.
//
//   npm ci --prefix web            # playwright-core only; it drives the system Chromium, downloads no browser
//   bash scripts/build-web.sh
//   node web/e2e.mjs               # CHROMIUM=/usr/bin/chromium TIMEOUT_S=600 by default
//   WEBGPU=0 node web/e2e.mjs      # the same without WebGPU: the page must fall back to the CPU backend
//
// Chromium needs --enable-unsafe-webgpu on Linux to expose its software (SwiftShader) WebGPU
// adapter (stack-notes §4.1). With that flag alone, presenting the egui canvas loses the device
// ("A valid external Instance reference no longer exists.") and with it burn's work on the shared
// device; SwiftShader through Vulkan for both WebGPU and ANGLE presents fine, hence the extra flags.

import { createServer } from 'node:http';
import { readFile, writeFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { crc32, deflateSync, gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeoutMs = Number(process.env.TIMEOUT_S || 600) * 1000;
const query = process.env.QUERY || 'generator=var&class=3&seed=1&autorun=1';
const webgpu = process.env.WEBGPU !== '0';

// playwright-core from web/node_modules, else from $PLAYWRIGHT_DIR (a folder holding node_modules).
const require = createRequire(join(process.env.PLAYWRIGHT_DIR || here, 'package.json'));
const { chromium } = require('playwright-core');

// The code the page downloads before it can draw (the wasm and its JS glue), gzipped as a static
// host would serve it: held to a budget (MB). Issue 16 asks for 3 MB; BUNDLE_BUDGET_MB is the
// ceiling measured so far (BENCHMARKS.md, "Web bundle size"), so the bundle cannot grow back.
const budgetMb = Number(process.env.BUNDLE_BUDGET_MB || 7.5);
const gzipped = (await Promise.all(['tessera_bg.wasm', 'tessera.js'].map(async (f) => gzipSync(await readFile(join(dist, f)), { level: 9 }).length)))
  .reduce((a, b) => a + b, 0) / 1e6;
console.log(`code bundle (wasm + JS): ${gzipped.toFixed(2)} MB gzipped (budget ${budgetMb} MB)`);
const failures = [];
if (gzipped > budgetMb) failures.push(`the code bundle is ${gzipped.toFixed(2)} MB gzipped, over its ${budgetMb} MB budget`);

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.png': 'image/png' };
// Requests the server answered, by path: the offline copy must leave it alone.
const served = [];
// Set to serve the next build's service worker (its cache named anew), as a redeploy would.
let nextBuild = false;
const server = createServer(async (req, res) => {
  let path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  if (path.endsWith('/')) path += 'index.html';
  served.push(path);
  try {
    let body = await readFile(join(dist, path));
    if (nextBuild && path === '/sw.js') body = Buffer.from(body.toString().replace(/const CACHE = 'tessera-([0-9a-f]+)'/, "const CACHE = 'tessera-$1-next'"));
    res.writeHead(200, { 'content-type': types[extname(path)] || 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const url = `http://127.0.0.1:${server.address().port}/?${query}`;

const errors = [];
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [...(webgpu ? ['--enable-unsafe-webgpu'] : []), '--enable-features=Vulkan', '--use-vulkan=swiftshader',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', '--no-sandbox', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text().slice(0, 500)); });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e}`));
  await generateAndCheck(page, url, 'var');
  // The models are not in the wasm: the page fetched VAR's pair (the offline copy's precache may
  // have fetched them all since the first image).
  const models = served.filter((p) => p.endsWith('.ckpt'));
  console.log('models the server sent during the first visit:', JSON.stringify(models));
  if (models.slice(0, 2).sort().join() !== '/assets/var-tiny/tokenizer.ckpt,/assets/var-tiny/var.ckpt') {
    failures.push(`the first models fetched were not VAR's pair: ${JSON.stringify(models)}`);
  }
  // The first visit installed the offline copy (web/sw.js): the next load takes the wasm, models
  // and all, from it.
  const ready = await page.evaluate(() => Promise.race([navigator.serviceWorker.ready.then(() => true),
    new Promise((ok) => setTimeout(() => ok(false), 60000))]));
  if (!ready) failures.push('the offline copy (service worker) was not ready within 60 s of the first visit');
  const wasmLoads = [];
  const watch = (r) => { if (r.url().endsWith('/tessera_bg.wasm')) wasmLoads.push(r.fromServiceWorker()); };
  page.on('response', watch);
  served.length = 0;
  // RAR, token by token: the same automation link with generator=rar draws a digit too, its
  // models (never fetched by the page before) from the offline copy as well.
  await generateAndCheck(page, url.replace('generator=var', 'generator=rar'), 'rar');
  page.off('response', watch);
  console.log('second load: the wasm came from the offline copy:', JSON.stringify(wasmLoads), 'the server saw:', JSON.stringify(served));
  if (wasmLoads.length !== 1 || !wasmLoads[0]) failures.push(`the second load did not take the wasm from the offline copy: ${JSON.stringify(wasmLoads)}`);
  const downloaded = served.filter((p) => p !== '/sw.js');
  if (downloaded.length) failures.push(`the second load downloaded again: ${JSON.stringify(downloaded)}`);
  // With the network off the page still opens and draws.
  await page.context().setOffline(true);
  await generateAndCheck(page, url, 'var');
  await page.context().setOffline(false);
  await newBuildReplacesTheCache(page);
  // A lesson link: only the seed and the player, with a note; a reload keeps it.
  const lessonUrl = url.replace(/\?.*$/, '?v=2&generator=var&class=3&seed=1&autorun=1&lesson=seed,player&note=Three%20seeds%2C%20one%20class');
  for (const visit of ['lesson link', 'lesson link reloaded']) {
    if (visit.endsWith('reloaded')) {
      // The address bar's link does not autorun: the page is ready once its models are in.
      await page.reload();
      await page.waitForFunction(() => ['ready', 'done'].includes(window.tessera?.state), null, { timeout: 120000, polling: 250 });
    } else {
      await generateAndCheck(page, lessonUrl, 'var');
    }
    const lesson = await page.evaluate(() => ({ lesson: window.tessera?.lesson, search: location.search }));
    console.log(`${visit}:`, JSON.stringify(lesson));
    if (JSON.stringify(lesson.lesson) !== JSON.stringify({ shown: ['seed', 'player'], note: 'Three seeds, one class' })) {
      failures.push(`${visit}: window.tessera.lesson is ${JSON.stringify(lesson.lesson)}`);
    }
    if (!lesson.search.includes('lesson=seed,player')) failures.push(`${visit}: the address bar lost the lesson: ${lesson.search}`);
  }
  // The column generator, 8 times its training width.
  await generateWideAndCheck(page);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });

  // Checkpoints kept in the browser's storage (OPFS) are listed again after a reload: a real one
  // (the shipped tokenizer) is listed, a damaged one is not.
  const ckpt = (await readFile(join(here, '..', 'assets', 'var-tiny', 'tokenizer.ckpt'))).toString('base64');
  await page.evaluate(async (b64) => {
    const good = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dir = await navigator.storage.getDirectory();
    for (const [name, bytes] of [['e2e-tokenizer.ckpt', good], ['e2e-damaged.ckpt', good.slice(0, 1000)]]) {
      const out = await (await dir.getFileHandle(name, { create: true })).createWritable();
      await out.write(bytes);
      await out.close();
    }
  }, ckpt);
  await page.reload();
  try {
    await page.waitForFunction(() => (window.tessera?.checkpoints || []).some((l) => l.includes('e2e-tokenizer.ckpt')),
      null, { timeout: 120000, polling: 500 });
  } catch {
    failures.push('the checkpoint in browser storage was not listed after a reload');
  }
  const listed = await page.evaluate(() => window.tessera?.checkpoints || []);
  console.log('checkpoints after reload:', JSON.stringify(listed));
  if (!listed.some((l) => l.startsWith('tokenizer at step') && l.endsWith('browser storage: e2e-tokenizer.ckpt'))) {
    failures.push(`stored tokenizer missing or mislabelled: ${JSON.stringify(listed)}`);
  }
  if (listed.some((l) => l.includes('e2e-damaged'))) failures.push('a damaged checkpoint was listed');

  // Training in the page on the user's own pictures: a link asks for a short run (2 tokenizer and
  // 1 transformer steps of 4 images) on whatever pictures are dropped next; its checkpoints go to
  // the page's storage and are listed again after a reload. On a software adapter (SwiftShader
  // here) the app trains on the CPU backend, as the CLI does. TRAIN=0 skips this part.
  if (process.env.TRAIN !== '0') {
    await trainOnPicturesInPage(page);
    await trainPairInPage(page, 'rar', 'RAR', 'rar');
    await trainPairInPage(page, 'columns', 'Equivariant \\(columns\\)', 'equivariant');
  }

  // The WGSL kernels in the browser: on a software adapter the app samples on the CPU backend
  // (several times faster), so a link's device=gpu keeps this digit on the adapter itself (for
  // that page only).
  if (webgpu) await generateAndCheck(page, `${url}&device=gpu`, 'var', 'adapter');

  // A lost GPU device: the page's own GPUDevice is destroyed (a real loss, as a driver reset
  // gives); the app must say so in the page and must not crash.
  if (webgpu) await loseTheDevice(browser);
} finally {
  await browser.close();
  server.close();
}

/** A new build (here: its service worker's cache renamed, as a redeploy does) installs a new
 * worker, which takes over once no page runs the old build and deletes the old build's cache. */
async function newBuildReplacesTheCache(page) {
  const cachesNow = () => page.evaluate(() => caches.keys());
  const before = await cachesNow();
  nextBuild = true;
  // Open, let the page see the new worker, close; the next page gets the new build.
  for (let visit = 0; visit < 3; visit++) {
    await page.goto(url);
    await page.waitForFunction(() => window.tessera?.state === 'done', null, { timeout: timeoutMs, polling: 250 });
    await page.evaluate(async () => { const r = await navigator.serviceWorker.getRegistration(); if (r) await r.update(); });
    const after = await cachesNow();
    if (after.length === 1 && after[0].endsWith('-next')) break;
    await page.goto('about:blank');
    await page.waitForTimeout(2000);
  }
  const after = await cachesNow();
  console.log('caches before the new build:', JSON.stringify(before), 'after:', JSON.stringify(after));
  if (before.length !== 1 || after.length !== 1 || !after[0].endsWith('-next')) {
    failures.push(`a new build did not replace the old cache: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  }
}

/** Opens `target` (an automation link with autorun), waits for the image and checks it is a
 * 32x32 digit drawn by `generator` with the link's settings, computed on the CPU backend (the
 * fastest where the only adapter is a software one) or, with `on` = 'adapter', on the adapter. */
async function generateAndCheck(page, target, generator, on = 'CPU') {
  const started = Date.now();
  await page.goto(target);
  try {
    await page.waitForFunction(() => ['done', 'error'].includes(window.tessera?.state), null,
      { timeout: timeoutMs, polling: 500 });
  } catch {
    failures.push(`${generator}: window.tessera.state never became "done" within ${timeoutMs / 1000} s`);
  }
  const status = await page.evaluate(() => {
    const t = window.tessera || {};
    return { state: t.state, error: t.error, adapter: t.adapter, notice: t.notice, last: t.last, timings: t.timings };
  });
  // The page's start-up phases, in milliseconds from navigation: each reached, in order.
  const phases = ['download', 'compile', 'adapter', 'weights', 'first_image'];
  const timings = status.timings || {};
  console.log(`${generator} timings (ms from navigation):`, JSON.stringify(timings));
  phases.forEach((phase, i) => {
    if (!(timings[phase] > 0)) failures.push(`${generator}: window.tessera.timings.${phase} is ${timings[phase]}`);
    else if (i > 0 && timings[phase] < timings[phases[i - 1]]) failures.push(`${generator}: timings out of order: ${JSON.stringify(timings)}`);
  });
  const { png, ...last } = status.last || {};
  console.log(`${generator} after ${((Date.now() - started) / 1000).toFixed(1)} s:`,
    JSON.stringify({ ...status, last: { ...last, png: png ? `${png.slice(0, 30)}… (${png.length} chars)` : png } }));
  if (status.state !== 'done') failures.push(`${generator}: state is ${status.state} (error: ${status.error})`);
  // The compute device the app chose: WebGPU when the browser has it, else burn's CPU backend.
  const expectAdapter = webgpu ? 'WebGPU' : 'CPU';
  if (!String(status.adapter).includes(expectAdapter)) failures.push(`adapter is ${status.adapter}, expected ${expectAdapter}`);
  // A software adapter leaves sampling to the CPU backend; a real GPU (or the CPU backend) keeps it.
  const software = String(status.adapter).includes('software');
  const expectDevice = on === 'adapter' || !software ? status.adapter : 'CPU (burn flex backend)';
  if (status.last && status.last.device !== expectDevice) failures.push(`${generator}: computed on ${status.last.device}, expected ${expectDevice}`);
  if (!status.last) {
    failures.push('window.tessera.last is missing');
  } else {
    const want = { generator, class: 3, seed: 1, width: 32, height: 32 };
    for (const [k, v] of Object.entries(want)) {
      if (status.last[k] !== v) failures.push(`last.${k} is ${status.last[k]}, expected ${v}`);
    }
    if (!(status.last.ms > 0)) failures.push(`last.ms is ${status.last.ms}`);
    if (!String(png).startsWith('data:image/png;base64,')) {
      failures.push('last.png is not a PNG data URL');
    } else {
      // Decode in the page: the browser's own PNG decoder, then the pixels' brightness.
      const pixels = await page.evaluate(async (src) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let bright = 0, dark = 0;
        for (let i = 0; i < data.length; i += 4) {
          const luma = (data[i] + data[i + 1] + data[i + 2]) / 3;
          if (luma > 128) bright++;
          if (luma < 64) dark++;
        }
        return { width: canvas.width, height: canvas.height, bright, dark };
      }, png);
      console.log(`${generator}: decoded last.png:`, JSON.stringify(pixels));
      if (pixels.width !== 32 || pixels.height !== 32) failures.push(`last.png is ${pixels.width}x${pixels.height}, expected 32x32`);
      // An MNIST digit covers roughly 10-25 % of the 32x32 frame; blank or flat images fail.
      if (pixels.bright < 20 || pixels.dark < 300) failures.push(`${generator}: last.png does not look like a digit: ${JSON.stringify(pixels)}`);
    }
  }
}

/** Destroys the page's GPUDevice in the middle of work and checks what the page says: first
 * during a RAR generation (token by token, on the GPU), then during a training run (which a
 * software adapter leaves to the CPU backend, so it must go on to its end and keep its
 * checkpoints). The page must report the loss and must not crash (no uncaught error, which a
 * panic in the wasm would be). */
async function loseTheDevice(browser) {
  const lose = async (link, what, started) => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const crashes = [];
    const afterLoss = [];
    page.on('pageerror', (e) => crashes.push(`${what}: uncaught after the loss: ${e}`));
    page.on('console', (m) => { if (m.type() === 'error') afterLoss.push(m.text().slice(0, 200)); });
    // Keep every device the page asks for, so the test can destroy it.
    await page.addInitScript(() => {
      if (!('gpu' in navigator)) return;
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await request.apply(this, args);
        (window.__tesseraDevices ||= []).push(device);
        return device;
      };
    });
    await page.goto(url.replace(/\?.*$/, link));
    let said = null;
    try {
      await page.waitForFunction(started, null, { timeout: timeoutMs, polling: 100 });
      const destroyed = await page.evaluate(() => (window.__tesseraDevices || []).map((d) => (d.destroy(), 1)).length);
      if (destroyed === 0) failures.push(`${what}: no GPUDevice to destroy: the page did not use WebGPU`);
      // The app notices at its next frame; a mouse move asks for one.
      for (let i = 0; i < 60 && !said; i++) {
        await page.mouse.move(100 + i, 100);
        said = await page.evaluate(() => {
          const box = document.getElementById('tessera_message');
          const shown = box && getComputedStyle(box).display !== 'none' ? box.textContent : null;
          return window.tessera?.state === 'error' && shown && shown.includes('GPU device was lost') ? shown : null;
        });
        if (!said) await page.waitForTimeout(500);
      }
      if (!said) failures.push(`${what}: a lost GPU device was not reported in the page`);
      console.log(`${what}: after destroying ${destroyed} GPUDevice(s) the page says:`, JSON.stringify(said),
        `(${afterLoss.length} console error(s) after the loss, expected: work on a lost device fails)`);
      return page;
    } catch (e) {
      failures.push(`${what}: ${e}`);
      return page;
    } finally {
      // Crashes are read when the page closes: later work on it is watched too.
      page.once('close', () => failures.push(...crashes));
    }
  };

  // During a generation on the adapter (device=gpu): RAR's 64 tokens take a while on SwiftShader.
  let page = await lose('?generator=rar&class=3&seed=1&n=4&autorun=1&device=gpu', 'a generation',
    () => window.tessera?.state === 'running');
  await page.close();

  // During a training run on the CPU backend: it goes on to its end and keeps its checkpoints.
  page = await lose('?train=2,40,4', 'a training run', () => String(window.tessera?.training) === 'training');
  try {
    await page.waitForFunction(() => ['done', 'stopped'].includes(window.tessera?.training) ||
      String(window.tessera?.training).startsWith('failed'), null, { timeout: timeoutMs, polling: 500 });
    const trained = await page.evaluate(() => ({ training: window.tessera?.training, checkpoints: window.tessera?.checkpoints }));
    console.log('training after the loss:', JSON.stringify(trained));
    if (trained.training !== 'done') failures.push(`a training run on the CPU ended "${trained.training}" after the GPU was lost`);
    const listed = trained.checkpoints || [];
    if (!listed.some((l) => /^tokenizer at step 2: browser storage:/.test(l)) || !listed.some((l) => /^transformer at step 40: browser storage:/.test(l))) {
      failures.push(`a training run after the GPU loss did not list both checkpoints: ${JSON.stringify(trained.checkpoints)}`);
    }
  } catch (e) {
    failures.push(`a training run after the GPU loss: ${e}`);
  } finally {
    await page.close();
  }
}

/** A solid-colour RGB PNG, `w`x`h`, with a gradient so no two pictures are alike. */
function png(w, h, [r, g, b], seed) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = [0]; // filter: none
    for (let x = 0; x < w; x++) row.push(r, (g + 4 * x) & 255, (b + 5 * y + seed * 17) & 255);
    rows.push(Buffer.from(row));
  }
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

/** A folder `pets/` of 3 cats and 3 dogs, a text file and a broken PNG, and `pets.zip` of it. */
async function makePets() {
  const root = await mkdtemp(join(tmpdir(), 'tessera-e2e-'));
  const pets = join(root, 'pets');
  for (const [cls, colour] of [['cats', [40, 90, 10]], ['dogs', [220, 30, 160]]]) {
    await mkdir(join(pets, cls), { recursive: true });
    for (let i = 0; i < 3; i++) await writeFile(join(pets, cls, `${i}.png`), png(40, 30, colour, i));
  }
  await writeFile(join(pets, 'cats', 'notes.txt'), 'not a picture');
  await writeFile(join(pets, 'dogs', 'broken.png'), png(40, 30, [0, 0, 0], 0).subarray(0, 60));
  // Python's zipfile (deflate) is on every machine this runs on; node has no zip writer.
  execFileSync('python3', ['-m', 'zipfile', '-c', 'pets.zip', 'pets'], { cwd: root });
  return { root, pets, zip: join(root, 'pets.zip') };
}

/** Waits for window.tessera.dataset to match `re`; returns it (or records a failure). */
async function waitForDataset(page, re, what) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(window.tessera?.dataset || ''), re.source, { timeout: 120000, polling: 250 });
  } catch {
    failures.push(`${what}: window.tessera.dataset is ${JSON.stringify(await page.evaluate(() => window.tessera?.dataset))}`);
  }
  return page.evaluate(() => window.tessera?.dataset);
}

async function waitForReady(page) {
  await page.waitForFunction(() => ['ready', 'done', 'error'].includes(window.tessera?.state), null, { timeout: timeoutMs, polling: 250 });
}

/** A `generator=<key>&train=2,1,4` link trains the family's tokenizer and transformer on MNIST in
 * the page; its checkpoints are listed as `<label> tokenizer at step 2: ...-<key>-...tokenizer.ckpt`
 * and `<label> transformer at step 1: ...<file>.ckpt` (`label` a regular expression). */
async function trainPairInPage(page, key, label, file) {
  const started = Date.now();
  await page.goto(url.replace(/\?.*$/, `?generator=${key}&train=2,1,4`));
  try {
    await page.waitForFunction(() => ['done', 'stopped'].includes(window.tessera?.training) ||
      String(window.tessera?.training).startsWith('failed'), null, { timeout: timeoutMs, polling: 500 });
  } catch {
    failures.push(`the ${key} training run did not end within ${timeoutMs / 1000} s`);
  }
  const trained = await page.evaluate(() => ({ training: window.tessera?.training, checkpoints: window.tessera?.checkpoints }));
  console.log(`${key} training after ${((Date.now() - started) / 1000).toFixed(1)} s:`, JSON.stringify(trained));
  if (trained.training !== 'done') failures.push(`${key} training ended as ${trained.training}`);
  const wanted = [new RegExp(`^${label} tokenizer at step 2: .*-${key}-.*tokenizer\\.ckpt$`),
    new RegExp(`^${label} transformer at step 1: .*-${key}-.*${file}\\.ckpt$`)];
  for (const want of wanted) {
    if (!(trained.checkpoints || []).some((l) => want.test(l))) failures.push(`no checkpoint like ${want} listed`);
  }
}

/** The shipped column generator's landscapes (`model=columns-scenes`, fetched when first asked
 * for) at 64 columns, 8 times the 8 it was trained on: the image is 8 times the training width
 * (32 px), in colour and not blank. */
async function generateWideAndCheck(page) {
  const started = Date.now();
  await page.goto(url.replace(/\?.*$/, '?generator=columns&model=columns-scenes&class=3&seed=1&width=64&autorun=1'));
  try {
    await page.waitForFunction(() => window.tessera?.state === 'done', null, { timeout: timeoutMs, polling: 500 });
  } catch {
    failures.push(`columns: window.tessera.state never became "done" within ${timeoutMs / 1000} s`);
  }
  const status = await page.evaluate(() => ({ state: window.tessera?.state, error: window.tessera?.error, last: window.tessera?.last }));
  const { png, ...last } = status.last || {};
  console.log(`columns (64 columns) after ${((Date.now() - started) / 1000).toFixed(1)} s:`, JSON.stringify({ ...status, last }));
  if (status.state !== 'done' || !png) {
    failures.push(`columns: state is ${status.state} (error: ${status.error})`);
    return;
  }
  const want = { generator: 'columns', model: 'columns-scenes', class: 3, seed: 1, width: 8 * 32, height: 32 };
  for (const [k, v] of Object.entries(want)) {
    if (last[k] !== v) failures.push(`columns: last.${k} is ${last[k]}, expected ${v}`);
  }
  const pixels = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0, sq = 0, unmade = 0, chroma = 0;
    const n = data.length / 4;
    for (let i = 0; i < data.length; i += 4) {
      const luma = (data[i] + data[i + 1] + data[i + 2]) / 3;
      sum += luma;
      sq += luma * luma;
      if (data[i] === 128 && data[i + 1] === 128 && data[i + 2] === 128) unmade++;
      chroma += Math.max(data[i], data[i + 1], data[i + 2]) - Math.min(data[i], data[i + 1], data[i + 2]);
    }
    const mean = sum / n;
    return { width: canvas.width, height: canvas.height, mean: Math.round(mean), std: Math.round(Math.sqrt(sq / n - mean * mean)), unmade, chroma: Math.round(chroma / n) };
  }, png);
  console.log('columns: decoded last.png:', JSON.stringify(pixels));
  if (pixels.width !== 256 || pixels.height !== 32) failures.push(`columns: last.png is ${pixels.width}x${pixels.height}, expected 256x32`);
  // Not blank: the pixels vary, and the not-yet-made gray is gone.
  if (pixels.std < 10 || pixels.unmade > pixels.width * pixels.height / 10) failures.push(`columns: last.png looks blank: ${JSON.stringify(pixels)}`);
  // A landscape, not a grey digit: the channels differ.
  if (pixels.chroma < 10) failures.push(`columns: last.png looks grey, not a landscape: ${JSON.stringify(pixels)}`);
}

async function trainOnPicturesInPage(page) {
  const { root, pets, zip } = await makePets();
  const expected = /^pets: 6 images in 2 classes \(cats, dogs\), 3x32x32; 2 file\(s\) skipped$/;
  try {
    // 1. A .zip dropped on the page (what eframe reads as a dropped file).
    await page.goto(url.replace(/\?.*$/, '?tab=train'));
    await waitForReady(page);
    await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], 'pets.zip', { type: 'application/zip' }));
      const canvas = document.getElementById('tessera_canvas');
      for (const type of ['dragover', 'drop']) canvas.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }, (await readFile(zip)).toString('base64'));
    console.log('dropped pets.zip:', JSON.stringify(await waitForDataset(page, expected, 'the dropped zip')));

    // 2. The folder itself, dropped as the OS drops one (DevTools' drag events carry real paths,
    //    so the page sees a directory entry), on a link that trains on the next pictures.
    const trainStarted = Date.now();
    await page.goto(url.replace(/\?.*$/, '?train=2,1,4&dataset=pictures'));
    await waitForReady(page);
    const cdp = await page.context().newCDPSession(page);
    const drag = { items: [], files: [pets], dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop']) await cdp.send('Input.dispatchDragEvent', { type, x: 640, y: 400, data: drag });
    console.log('dropped the pets folder:', JSON.stringify(await waitForDataset(page, expected, 'the dropped folder')));
    try {
      await page.waitForFunction(() => ['done', 'stopped'].includes(window.tessera?.training) ||
        String(window.tessera?.training).startsWith('failed'), null, { timeout: timeoutMs, polling: 500 });
    } catch {
      failures.push(`the training run did not end within ${timeoutMs / 1000} s`);
    }
    const trained = await page.evaluate(() => ({ training: window.tessera?.training, checkpoints: window.tessera?.checkpoints }));
    console.log(`training after ${((Date.now() - trainStarted) / 1000).toFixed(1)} s:`, JSON.stringify(trained));
    if (trained.training !== 'done') failures.push(`training ended as ${trained.training}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  // 3. After a reload the run's checkpoints are listed again, named after the pictures' folder.
  await page.goto(url.replace(/\?.*$/, '?'));
  const runFiles = /browser storage: pets-\d+-(tokenizer|var)\.ckpt$/;
  try {
    await page.waitForFunction((re) => (window.tessera?.checkpoints || []).filter((l) => new RegExp(re).test(l)).length >= 2,
      runFiles.source, { timeout: 120000, polling: 500 });
  } catch {
    failures.push('the trained checkpoints were not listed after a reload');
  }
  const relisted = await page.evaluate(() => window.tessera?.checkpoints || []);
  console.log('checkpoints after the run and a reload:', JSON.stringify(relisted));
  for (const want of ['tokenizer at step 2: ', 'transformer at step 1: ']) {
    if (!relisted.some((l) => l.startsWith(want) && runFiles.test(l))) failures.push(`no "${want}..." stored checkpoint listed`);
  }
}

for (const e of errors) failures.push(`console error: ${e}`);
if (failures.length) {
  console.error(`web e2e FAILED:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('web e2e passed');
