{% autoescape off %}// The Chave app's service worker: the app's page and files from the cache when there is no
// network (offline codes need nothing else), the API always from the network, and Web Push
// messages (RFC 8291, decrypted by the browser) shown as notifications.
const CACHE = "chave-app-{{ version }}";
const SHELL = {{ shell_json }};

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((names) => Promise.all(
    names.filter((n) => n.startsWith("chave-app-") && n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || url.pathname.startsWith("/app/api/")) return;
  if (event.request.mode === "navigate") {
    // The page: fresh when online (its language may have changed), the cached one when not.
    event.respondWith(fetch(event.request).then((response) => {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(SHELL[0], copy));
      return response;
    }).catch(() => caches.match(SHELL[0])));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(caches.match(url.pathname).then((cached) => cached || fetch(event.request)));
  }
});

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const title = data.type === "approval" ? `Chave · ${data.portal}` : `Chave · ${data.portal || ""}`;
  const body = data.type === "code" ? `${data.code} — ${data.text || ""}` : (data.text || "");
  event.waitUntil(self.registration.showNotification(title, {
    body, tag: data.type === "approval" ? `approval-${data.id}` : "chave-code", renotify: true,
    icon: SHELL.find((p) => p.endsWith("icon-192.png")), data: { url: SHELL[0] },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((windows) => {
    const open = windows.find((w) => new URL(w.url).pathname.startsWith(SHELL[0]));
    return open ? open.focus() : self.clients.openWindow(SHELL[0]);
  }));
});
{% endautoescape %}
