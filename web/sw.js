// oO's service worker: the page's shell works offline, and pushed tips become notifications.
// API responses are never cached: they go to the network as if this worker were not here.
//
// SHELL lists every file of the page (tests/web/test_assets.py checks it). The server rewrites
// it to content-hashed URLs, so a new release changes this file, the browser installs the new
// worker, and the new worker drops whatever the old one cached.

const CACHE = "oo-shell";
// Event ids of pushes shown on this device (a few dozen, newest kept): a push sent again after
// the notifier crashed mid-send is not shown twice (docs/adr/0012-web-push-delivery.md).
const SEEN = "oo-push-seen";
const SEEN_KEEP = 50;
const SHELL = [
  "/",
  "/manifest.webmanifest",
  "styles.css",
  "app.js",
  "api.js",
  "outbox.js",
  "swipe.js",
  "connections.js",
  "push.js",
  "storage.js",
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
        if (name !== CACHE && name !== SEEN) await caches.delete(name);
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

// --- pushes ------------------------------------------------------------------------------------

self.addEventListener("push", (event) => {
  event.waitUntil(showPush(event.data));
});

async function showPush(data) {
  let push = null;
  try {
    push = data ? data.json() : null;
  } catch {
    // Not ours, or garbled: a plain notice below rather than nothing.
  }
  await closeExpired();
  if (!push || typeof push.title !== "string" || typeof push.event_id !== "string") {
    await self.registration.showNotification("oO", { body: "A tip is waiting.", tag: "tip" });
    return;
  }
  const tag = push.topic || push.event_id;
  const showing = await self.registration.getNotifications({ tag });
  const onScreen = showing.some((shown) => shown.data?.event_id === push.event_id);
  if (!onScreen && (await seen(push.event_id))) return; // opened or dismissed already
  // The tag is the push's topic: a newer tip replaces an unopened earlier one, and a copy of
  // the one on screen replaces it silently (renotify stays false).
  await self.registration.showNotification(push.title, {
    body: push.body || "",
    tag,
    icon: "icons/icon-192.png",
    badge: "icons/icon-32.png",
    timestamp: Date.now(),
    data: {
      event_id: push.event_id,
      kind: push.kind,
      url: push.url || "/",
      expires_at: push.expires_at || null,
    },
  });
  await remember(push.event_id);
}

/** A notification outlives its push's TTL only until the next push arrives. */
async function closeExpired() {
  const now = Date.now();
  for (const shown of await self.registration.getNotifications()) {
    if (shown.data?.expires_at && shown.data.expires_at < now) shown.close();
  }
}

function seenRequest(eventId) {
  return new Request(new URL(`/push-seen/${encodeURIComponent(eventId)}`, self.location.origin));
}

async function seen(eventId) {
  const cache = await caches.open(SEEN);
  return Boolean(await cache.match(seenRequest(eventId)));
}

async function remember(eventId) {
  const cache = await caches.open(SEEN);
  await cache.put(seenRequest(eventId), new Response(""));
  const keys = await cache.keys();
  for (const old of keys.slice(0, Math.max(0, keys.length - SEEN_KEEP))) await cache.delete(old);
}

// A click opens the page on exactly that tip: an open page is told (and focused), otherwise a
// window opens at the push's URL (/?tip=<event id>). The page activates the tip and records the
// open with its own credentials.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openPage(event.notification.data ?? {}));
});

async function openPage({ event_id: eventId, kind, url = "/" }) {
  const target = new URL(url, self.location.origin);
  if (target.origin !== self.location.origin) return; // only ever our own page
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const page = windows.find((client) => new URL(client.url).origin === self.location.origin);
  if (page) {
    page.postMessage({ type: "oo:open-push", eventId, kind });
    try {
      await page.focus();
    } catch {
      // Focusing needs the click's user activation; the page shows the tip either way.
    }
    return;
  }
  await self.clients.openWindow(target.href);
}
