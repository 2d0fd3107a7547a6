// Tessera's service worker: after one visit the page opens and generates with the network off.
// It precaches the whole app (index.html, the JS glue and the wasm, which holds the shipped models)
// in a cache named after the build; scripts/build-web.sh writes the build's hash over __BUILD__.
// A new build installs a new worker, which deletes the older caches once it takes over.

const CACHE = 'tessera-__BUILD__';
const FILES = ['./', './index.html', './tessera.js', './tessera_bg.wasm'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
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
