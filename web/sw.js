// Tessera's service worker: after one visit the page opens and generates with the network off.
// It precaches the whole app (index.html, the JS glue and the wasm, which holds the shipped models)
// in a cache named after the build; scripts/build-web.sh writes the build's hash over __BUILD__.
// A new build installs a new worker. It takes over once no page runs the old build (no
// skipWaiting: a page still loading must get the glue and the wasm of one build), then deletes the
// older caches.

const CACHE = 'tessera-__BUILD__';
const FILES = ['./', './index.html', './tessera.js', './tessera_bg.wasm'];

self.addEventListener('install', (event) => {
  // Past the HTTP cache, so a new build's cache never holds an older build's file.
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'reload' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('tessera-') && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
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
