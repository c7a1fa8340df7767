// The console's service worker (realtime/console/web_app.py): an offline page, nothing else.
// Navigations go to the network; when it cannot be reached, the offline page answers.
// Only the offline page's own files are kept; the streams, fragments, images and every
// violation's data are never cached (their requests are not even intercepted).
const CACHE = "{{ cache_name }}";
const PRECACHED = {{ precached|safe }};
const OFFLINE = {{ offline_url|safe }};

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHED))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE)));
    return;
  }
  const url = new URL(request.url);
  if (url.origin === self.location.origin && PRECACHED.includes(url.pathname)) {
    event.respondWith(caches.match(request).then((kept) => kept || fetch(request)));
  }
});
