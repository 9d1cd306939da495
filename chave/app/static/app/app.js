// The Chave app (chave/app/API.md): a device of the citizen's Digital Mobile Key.
//
// What is secret never leaves WebCrypto: the device key is an ECDSA P-256 key made with
// extractable = false, the offline-code secret is imported as a non-extractable HMAC-SHA-256 key,
// and both CryptoKey objects live in IndexedDB (nothing secret in localStorage). Every call to the
// app API is signed with the device key; Chave's clock (Chave-Time) corrects ours, for signatures
// and for offline codes (RFC 6238 with HMAC-SHA-256), which are made here with no network.

const main = document.getElementById("main");
const texts = document.getElementById("texts").dataset;
const POLL_SECONDS = Number(main.dataset.poll) || 3;
const DIGITS = Number(main.dataset.digits) || 6;
const enc = new TextEncoder();

// --- storage: IndexedDB -------------------------------------------------------------------------

function db() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("chave-app", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("state");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function load(name) {
  const store = (await db()).transaction("state").objectStore("state");
  return new Promise((resolve, reject) => {
    const get = store.get(name);
    get.onsuccess = () => resolve(get.result);
    get.onerror = () => reject(get.error);
  });
}

async function save(name, value) {
  const tx = (await db()).transaction("state", "readwrite");
  tx.objectStore("state").put(value, name);
  return new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); });
}

async function forget() {
  const tx = (await db()).transaction("state", "readwrite");
  tx.objectStore("state").clear();
  return new Promise((resolve) => { tx.oncomplete = resolve; });
}

// --- bytes ------------------------------------------------------------------------------------------

function b64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(text) {
  const raw = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// --- the clock: ours, corrected by Chave's -------------------------------------------------------

let device = null; // {id, name, holder, privateKey, publicJwk, hmacKey, period, clockOffset}
let clockOffset = 0;

function now() { return Date.now() + clockOffset; }

// --- signed calls ---------------------------------------------------------------------------------

class Refused extends Error {
  constructor(status, data) { super((data && data.message) || String(status)); this.status = status; this.data = data || {}; }
}

async function call(method, path, payload, { key = null, id = null, retried = false } = {}) {
  const body = payload === undefined ? new Uint8Array() : enc.encode(JSON.stringify(payload));
  const signer = key || (device && device.privateKey);
  const headers = { "Content-Type": "application/json" };
  if (signer) {
    const url = new URL(path, location.origin);
    const timestamp = String(Math.floor(now() / 1000));
    const nonce = b64url(crypto.getRandomValues(new Uint8Array(18)));
    const hash = b64url(await crypto.subtle.digest("SHA-256", body));
    const deviceId = id || (device && device.id) || "-";
    const text = ["chave-app-v1", method, url.pathname, url.search.replace(/^\?/, ""), deviceId, timestamp, nonce, hash].join("\n");
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, signer, enc.encode(text));
    Object.assign(headers, { "Chave-Device": deviceId, "Chave-Timestamp": timestamp, "Chave-Nonce": nonce,
                             "Chave-Signature": b64url(signature) });
  }
  const response = await fetch(path, { method, headers, body: method === "GET" ? undefined : body,
                                       credentials: "same-origin", cache: "no-store" });
  const serverTime = Number(response.headers.get("Chave-Time"));
  if (serverTime) {
    const offset = serverTime - Date.now();
    if (device && Math.abs(offset - (device.clockOffset || 0)) > 1000) {
      device.clockOffset = offset; // kept for offline codes made with no network
      save("device", device).catch(() => {});
    }
    clockOffset = offset;
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && data && data.error === "clock_skew" && !retried) {
      return call(method, path, payload, { key, id, retried: true });
    }
    throw new Refused(response.status, data);
  }
  return data;
}

// --- screens ------------------------------------------------------------------------------------

function show(name) {
  for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== `screen-${name}`;
  say("");
  const heading = document.querySelector(`#screen-${name} h1`);
  if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  current = name;
}

let current = "loading";

function say(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = !text;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}

function when(iso) {
  return new Date(iso).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
}

function refused(error) {
  if (error instanceof Refused) {
    if (error.data.error === "device_removed") { removed(); return; }
    say(error.message);
  } else {
    say(texts.offlineError);
  }
}

async function removed() {
  await forget();
  device = null;
  stopPolling();
  show("welcome");
  say(texts.removed);
}

// --- pairing ------------------------------------------------------------------------------------

async function pair(event) {
  event.preventDefault();
  const code = document.getElementById("pairing-code").value;
  const name = document.getElementById("device-name").value;
  try {
    const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey); // the public half only
    const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
    const answer = await call("POST", "/app/api/pairings", {
      pairing_code: code, public_key: publicJwk, name, push_subscription: null,
      language: document.documentElement.lang === "pt-PT" ? "pt-pt" : "en",
    }, { key: keys.privateKey, id: "-" });
    device = { id: answer.id, name: answer.name, holder: answer.holder, privateKey: keys.privateKey, publicJwk,
               hmacKey: null, period: answer.offline_period, pending: true, clockOffset,
               sentTo: answer.confirmation_sent_to };
    await save("device", device);
    confirmScreen(answer.confirmation_sent_to);
  } catch (error) { refused(error); }
}

function confirmScreen(sentTo) {
  const p = document.getElementById("confirm-sent");
  p.textContent = fill(p.dataset.text, { mobile: sentTo || "" });
  show("confirm");
}

async function confirm(event) {
  event.preventDefault();
  try {
    const answer = await call("POST", "/app/api/device/confirm", { code: document.getElementById("sms-code").value.trim() });
    const secret = unb64url(answer.offline.secret);
    device.hmacKey = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    secret.fill(0);
    device.period = answer.offline.period;
    device.pending = false;
    await save("device", device);
    await home();
    say(texts.paired);
  } catch (error) { refused(error); }
}

async function resendConfirmation() {
  try { await call("POST", "/app/api/device/confirm/resend", {}); } catch (error) { refused(error); }
}

// --- offline codes: RFC 6238, HMAC-SHA-256, made here --------------------------------------------

async function offlineCode(at) {
  const step = Math.floor(at / 1000 / device.period);
  const counter = new Uint8Array(8);
  new DataView(counter.buffer).setBigUint64(0, BigInt(step));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", device.hmacKey, counter));
  const offset = mac[mac.length - 1] & 0x0f;
  const value = ((mac[offset] & 0x7f) << 24 | mac[offset + 1] << 16 | mac[offset + 2] << 8 | mac[offset + 3]) % 10 ** DIGITS;
  return String(value).padStart(DIGITS, "0");
}

async function tick() {
  if (!device || !device.hmacKey || current !== "home") return;
  const at = now();
  document.getElementById("offline-code").textContent = await offlineCode(at);
  const left = device.period - Math.floor(at / 1000) % device.period;
  const p = document.getElementById("offline-left");
  p.textContent = fill(p.dataset.text, { seconds: String(left) });
}

// --- home: the inbox --------------------------------------------------------------------------------

let poller = null;

function stopPolling() { clearInterval(poller); poller = null; }

async function home() {
  show("home");
  const title = document.getElementById("home-title");
  title.textContent = fill(title.dataset.text, { name: device.holder || device.name });
  await tick();
  await refresh();
  stopPolling();
  poller = setInterval(() => { if (document.visibilityState === "visible") refresh(); }, POLL_SECONDS * 1000);
}

async function refresh() {
  if (!device || device.pending || !navigator.onLine) return;
  try {
    const inbox = await call("GET", "/app/api/inbox");
    renderApprovals(inbox.approvals);
    renderCodes(inbox.codes);
  } catch (error) {
    if (error instanceof Refused) refused(error);
  }
}

const answered = new Set();

function renderApprovals(approvals) {
  const list = document.getElementById("approval-list");
  const open = approvals.filter((a) => !answered.has(a.id));
  const shown = [...list.children].map((c) => c.dataset.id).join();
  if (shown === open.map((a) => a.id).join()) return; // unchanged: keep the focus where it is
  list.replaceChildren(...open.map((approval) => {
    const box = document.createElement("div");
    box.className = "approval";
    box.dataset.id = approval.id;
    const p = document.createElement("p");
    p.textContent = fill(texts.approval, { portal: approval.portal, time: when(approval.created_at) });
    const numbers = document.createElement("p");
    numbers.className = "numbers";
    for (const n of approval.numbers) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "number";
      button.textContent = String(n);
      button.setAttribute("aria-label", fill(texts.number, { number: String(n) }));
      button.addEventListener("click", () => answer(approval.id, { answer: "number", number: n }));
      numbers.append(button);
    }
    const notMe = document.createElement("button");
    notMe.type = "button";
    notMe.className = "warning";
    notMe.textContent = texts.notMe;
    notMe.addEventListener("click", () => answer(approval.id, { answer: "not_me" }));
    box.append(p, numbers, notMe);
    return box;
  }));
  document.getElementById("approvals").hidden = open.length === 0;
}

async function answer(id, payload) {
  answered.add(id);
  try {
    const result = await call("POST", `/app/api/approvals/${id}`, payload);
    renderApprovals([]);
    say({ approved: texts.approved, refused: texts.refused, reported: texts.reported }[result.result] || "");
  } catch (error) { refused(error); }
}

function renderCodes(codes) {
  const list = document.getElementById("code-list");
  list.replaceChildren(...codes.map((item) => {
    const li = document.createElement("li");
    li.className = "code-item";
    li.dataset.id = item.id;
    const title = document.createElement("p");
    title.textContent = item.purpose === "signing" && item.documents
      ? fill(texts.signingFor, { documents: item.documents, portal: item.portal })
      : fill(texts.codeFor, { portal: item.portal });
    const code = document.createElement("p");
    code.className = "big-code";
    code.textContent = item.code;
    const until = document.createElement("p");
    until.className = "hint";
    until.textContent = `${when(item.created_at)} · ${fill(texts.until, { time: when(item.expires_at) })}`;
    const done = document.createElement("button");
    done.type = "button";
    done.className = "secondary";
    done.textContent = texts.dismiss;
    done.addEventListener("click", async () => {
      try { await call("POST", `/app/api/inbox/${item.id}/dismiss`, {}); li.remove(); } catch (error) { refused(error); }
    });
    li.append(title, code, until, done);
    return li;
  }));
  document.getElementById("codes").hidden = codes.length === 0;
}

// --- QR sign-in ---------------------------------------------------------------------------------

let scanning = null;

async function scanScreen() {
  show("scan");
  const video = document.getElementById("camera");
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) return; // typing the short code still works
  try {
    const formats = await BarcodeDetector.getSupportedFormats();
    if (!formats.includes("qr_code")) return;
    const detector = new BarcodeDetector({ formats: ["qr_code"] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    scanning = setInterval(async () => {
      const found = await detector.detect(video).catch(() => []);
      if (found.length) { stopCamera(); scan(found[0].rawValue); }
    }, 300);
  } catch { stopCamera(); }
}

function stopCamera() {
  clearInterval(scanning);
  scanning = null;
  const video = document.getElementById("camera");
  if (video.srcObject) video.srcObject.getTracks().forEach((t) => t.stop());
  video.srcObject = null;
  video.hidden = true;
}

let qrRequest = null;

async function scan(code) {
  try {
    qrRequest = await call("POST", "/app/api/qr", { code });
    const p = document.getElementById("qr-portal");
    p.textContent = fill(p.dataset.text, { portal: qrRequest.portal });
    document.getElementById("qr-pin").value = "";
    show("qr-pin");
  } catch (error) { refused(error); }
}

async function approveQr(event) {
  event.preventDefault();
  const pin = document.getElementById("qr-pin");
  try {
    await call("POST", `/app/api/qr/${qrRequest.id}`, { pin: pin.value });
    pin.value = "";
    done(texts.qrDone);
  } catch (error) { pin.value = ""; refused(error); }
}

async function declineQr() {
  try { await call("POST", `/app/api/qr/${qrRequest.id}/decline`, {}); done(texts.qrDeclined); } catch (error) { refused(error); }
}

function done(text) {
  document.getElementById("done-text").textContent = text;
  show("done");
}

// --- settings -------------------------------------------------------------------------------------

function settingsScreen() {
  document.getElementById("settings-name").value = device.name;
  for (const radio of document.querySelectorAll('input[name="period"]')) radio.checked = Number(radio.value) === device.period;
  pushState();
  show("settings");
}

async function rename(event) {
  event.preventDefault();
  try {
    const answer = await call("POST", "/app/api/device/settings", { name: document.getElementById("settings-name").value });
    device.name = answer.name;
    await save("device", device);
    say("✓");
  } catch (error) { refused(error); }
}

async function setPeriod(event) {
  try {
    const answer = await call("POST", "/app/api/device/settings", { offline_period: Number(event.target.value) });
    device.period = answer.offline_period;
    await save("device", device);
  } catch (error) { refused(error); settingsScreen(); }
}

async function pushState() {
  const p = document.getElementById("push-state");
  let on = false;
  try { on = Boolean(await (await navigator.serviceWorker.ready).pushManager.getSubscription()); } catch { on = false; }
  p.textContent = on ? p.dataset.on : p.dataset.off;
}

async function enablePush() {
  try {
    if (await Notification.requestPermission() !== "granted") throw new Error("denied");
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: unb64url(main.dataset.vapid) });
    await call("POST", "/app/api/device/settings", { push_subscription: subscription.toJSON() });
  } catch (error) {
    if (error instanceof Refused) refused(error); else say(texts.pushFailed);
  }
  pushState();
}

async function unpair(event) {
  if (!window.confirm(event.target.dataset.confirm)) return;
  try { await call("POST", "/app/api/device/remove", {}); } catch (error) { if (!(error instanceof Refused)) { refused(error); return; } }
  await removed();
}

// --- start ----------------------------------------------------------------------------------------

function network() { document.getElementById("network").hidden = navigator.onLine; }

async function start() {
  document.getElementById("pair-form").addEventListener("submit", pair);
  document.getElementById("confirm-form").addEventListener("submit", confirm);
  document.getElementById("confirm-resend").addEventListener("click", resendConfirmation);
  document.getElementById("go-scan").addEventListener("click", scanScreen);
  document.getElementById("go-settings").addEventListener("click", settingsScreen);
  document.getElementById("scan-form").addEventListener("submit", (e) => { e.preventDefault(); stopCamera(); scan(document.getElementById("short-code").value); });
  document.getElementById("qr-pin-form").addEventListener("submit", approveQr);
  document.getElementById("qr-decline").addEventListener("click", declineQr);
  document.getElementById("name-form").addEventListener("submit", rename);
  for (const radio of document.querySelectorAll('input[name="period"]')) radio.addEventListener("change", setPeriod);
  document.getElementById("enable-push").addEventListener("click", enablePush);
  document.getElementById("unpair").addEventListener("click", unpair);
  for (const back of document.querySelectorAll(".back")) back.addEventListener("click", () => { stopCamera(); home(); });
  addEventListener("online", () => { network(); refresh(); });
  addEventListener("offline", network);
  network();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register(new URL("sw.js", location.href).pathname, { scope: "./" }).catch(() => {});
  setInterval(tick, 1000);

  device = await load("device");
  clockOffset = device ? device.clockOffset || 0 : 0;
  const hash = new URLSearchParams(location.hash.slice(1));
  if (!device) {
    show("welcome");
    if (hash.get("pair")) document.getElementById("pairing-code").value = hash.get("pair");
  } else if (device.pending) {
    confirmScreen(device.sentTo);
  } else {
    await home();
    if (hash.get("qr")) { scan(hash.get("qr")); }
  }
  if (location.hash) history.replaceState(null, "", location.pathname);
  // A link opened while the app is open (a pairing code, a QR code read by the phone's camera).
  addEventListener("hashchange", () => {
    const link = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", location.pathname);
    if (link.get("qr") && device && !device.pending) { stopCamera(); scan(link.get("qr")); }
    else if (link.get("pair") && !device) { show("welcome"); document.getElementById("pairing-code").value = link.get("pair"); }
  });
}

start();
