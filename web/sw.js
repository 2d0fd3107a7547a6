// Tessera's service worker: after one visit the page opens and generates with the network off.
// It precaches the whole app (index.html, the JS glue, the wasm, the shipped models and the MNIST
// digits) in a cache named after the build; scripts/build-web.sh writes the build's hash over
// __BUILD__ and the data files over __ASSETS__. A new build installs a new worker. It takes over
// once no page runs the old build (no skipWaiting, no clients.claim: a page must get the glue, the
// wasm and the models it fetches later all of one build), then deletes the older caches.

const CACHE = 'tessera-__BUILD__';
const FILES = ['./', './index.html', './tessera.js', './tessera_bg.wasm', __ASSETS__];

self.addEventListener('install', (event) => {
  // 'no-cache': each file is checked with the server, so a new build's cache never holds an older
  // build's file (a server that sends validators answers a file the page has just downloaded
  // with a 304 instead of sending it again).
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'no-cache' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('tessera-') && n !== CACHE).map((n) => caches.delete(n)))),
  );
});

// Cache first for the app's own files; a link's query (?generator=...) still opens the cached page.
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    caches.open(CACHE)
      .then((cache) => cache.match(request, { ignoreSearch: request.mode === 'navigate' }))
      .then((cached) => cached || fetch(request)),
  );
});
