// oO's service worker: the page's shell works offline. API responses are never cached: they
// go to the network as if this worker were not here.
//
// SHELL lists every file of the page (tests/web/test_assets.py checks it). The server rewrites
// it to content-hashed URLs, so a new release changes this file, the browser installs the new
// worker, and the new worker drops whatever the old one cached.

const CACHE = "oo-shell";
const SHELL = [
  "/",
  "/manifest.webmanifest",
  "styles.css",
  "app.js",
  "api.js",
  "outbox.js",
  "swipe.js",
  "connections.js",
  "icons/icon-32.png",
  "icons/apple-touch-icon.png",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/icon-maskable-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  const wanted = new Set(SHELL.map((url) => new URL(url, self.location).href));
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      const cache = await caches.open(CACHE);
      for (const request of await cache.keys()) {
        if (!wanted.has(request.url)) await cache.delete(request);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === "/") {
    // The page itself: fresh from the network when there is one, the cached shell when not.
    event.respondWith(fetch(request).catch(() => caches.match("/")));
  } else if (url.pathname.startsWith("/assets/") || url.pathname === "/manifest.webmanifest") {
    // Hashed assets never change under their URL: the cache answers first.
    event.respondWith(caches.match(request).then((hit) => hit ?? fetch(request)));
  }
  // Everything else, /v1/… above all, is left to the network.
});
