// The /app/ service worker (docs/pages.md, "Offline codes"): the app shell for a start with no network.
//
// The server puts BUILD (the hash of the shell's files) and SHELL (their URLs) above this text
// (yibao/pages service_worker()). Install caches the shell under "yb-app-shell-" + BUILD; activate
// deletes every other cache of ours, so a release replaces the shell as a whole. Requests for the shell
// are answered from that cache (the page and its scripts stay one consistent release); everything else,
// and ALWAYS /api/, goes to the network untouched: no API answer is ever put in Cache Storage, so
// nothing personal is kept here (the offline credential lives in IndexedDB, see offline.js).
/* global BUILD, SHELL */
"use strict";

const PREFIX = "yb-app-shell-";
const CACHE = PREFIX + BUILD;
const SHELL_PATHS = new Set(SHELL);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload", credentials: "omit" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith(PREFIX) && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || req.method !== "GET") return;
  if (url.pathname.startsWith("/api/")) return; // network only, never cached
  const path = url.pathname === "/app/index.html" ? "/app/" : url.pathname;
  if (!SHELL_PATHS.has(path)) return;
  event.respondWith(
    caches
      .open(CACHE)
      .then((cache) => cache.match(path))
      .then((hit) => hit || fetch(req)),
  );
});
