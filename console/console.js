// The hulykvs console (SPEC §23). Every data operation is an API v2 request
// carrying the token the user gave; nothing from the server is ever read as
// markup (textContent only, never innerHTML).

const PAGE = 100;
const KEPT_CHANGES = 500;
const TOKEN_KEY = "hulykvs.token";
const PLACE_KEY = "hulykvs.place";

const $ = (id) => document.getElementById(id);
const utf8 = new TextEncoder();
const base = new URL(".", location.href);

const state = {
  token: null,
  listing: null, // { workspace, namespace, prefix, revision, cursor, keys: [] }
  entry: null, // { key, etag, contentType, expireAt, bytes, text, ttlShown }
  revisions: new Map(), // key -> the revision of the last change to it seen
  watch: null, // { controller, since, listing }
  upload: null, // a File the next Save sends
};

// ---------------------------------------------------------------- messages

/** Shows `text` in the alert, fresh (announced again even if unchanged). */
function alertText(text) {
  const box = $("alert");
  box.hidden = true;
  box.textContent = "";
  box.textContent = text;
  box.hidden = false;
}

function clearAlert() {
  const box = $("alert");
  box.hidden = true;
  box.textContent = "";
}

function say(text) {
  $("status").textContent = text;
}

/** A failure of the server: its status and its `error` message. */
class ApiFailure extends Error {
  constructor(status, message, code, body) {
    super(`${status}${message ? `: ${message}` : ""}`);
    this.status = status;
    this.said = message;
    this.code = code;
    this.body = body;
  }
}

async function failureOf(response) {
  let message = response.statusText;
  let code = "";
  let body = null;
  try {
    body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
    if (body && typeof body.code === "string") code = body.code;
  } catch {
    // not JSON: the status line says it
  }
  return new ApiFailure(response.status, message, code, body);
}

/** A refused precondition: what it means here, then the server's own words. */
async function refusal(response, meaning) {
  const failure = await failureOf(response);
  return new Error(`${failure.status}: ${meaning} (the server: ${failure.said || "precondition failed"})`);
}

/** Runs one user action: a fresh alert, failures shown, a 401 signs out. */
function action(run) {
  return async (event) => {
    clearAlert();
    say("");
    try {
      await run(event);
    } catch (error) {
      report(error);
    }
  };
}

function report(error, prefix = "") {
  if (error instanceof ApiFailure && error.status === 401) {
    signOut(`The server refused the token: ${error.message}`);
    return;
  }
  if (error instanceof ApiFailure) {
    alertText(`${prefix}${error.message}${error.code ? ` (${error.code})` : ""}`);
  } else {
    alertText(`${prefix}${error.message || String(error)}`);
  }
}

// ---------------------------------------------------------------- requests

function segment(text, what) {
  if (text === "") throw new Error(`${what} is empty.`);
  if (text === "." || text === "..") {
    throw new Error(
      `A ${what.toLowerCase()} of "${text}" cannot be addressed from a browser ` +
        "(dot segments are removed from URLs); use the command line.",
    );
  }
  return encodeURIComponent(text);
}

function url(workspace, namespace, key, query) {
  let path = `api2/${segment(workspace, "Workspace")}/${segment(namespace, "Namespace")}`;
  if (key !== undefined) path += `/${segment(key, "Key")}`;
  const target = new URL(path, base);
  if (query) target.search = new URLSearchParams(query).toString().replace(/=(&|$)/g, "$1");
  return target;
}

async function call(target, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set("Authorization", `Bearer ${state.token}`);
  let response;
  try {
    response = await fetch(target, { ...init, headers, cache: "no-store", credentials: "omit" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error(`The service did not answer (${error.message}).`);
  }
  return response;
}

// ---------------------------------------------------------------- the token

function base64url(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(padded + "===".slice((padded.length + 3) % 4)), (c) =>
    c.charCodeAt(0),
  );
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, read in the page (the server still judges it). */
function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("This is not a token: a JWT has three parts separated by dots.");
  let claims;
  try {
    claims = JSON.parse(base64url(parts[1]));
  } catch {
    throw new Error("This is not a token: its claims are not base64url JSON.");
  }
  if (!claims || typeof claims !== "object") throw new Error("This is not a token: its claims are not an object.");
  return claims;
}

function describeToken(claims) {
  const parts = [`account ${claims.account ?? "(none)"}`];
  parts.push(claims.workspace ? `workspace ${claims.workspace}` : "every workspace it may use");
  if (typeof claims.exp === "number") {
    const left = claims.exp - Date.now() / 1000;
    parts.push(left > 0 ? `expires ${dateOf(claims.exp)} (${duration(left)} left)` : `expired ${dateOf(claims.exp)}`);
  } else {
    parts.push("does not expire");
  }
  return parts.join(" · ");
}

function signIn(token, restoring = false) {
  const claims = claimsOf(token);
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = describeToken(claims);
  $("who").hidden = false;
  $("sign-out").hidden = false;
  $("sign-in").hidden = true;
  $("workbench").hidden = false;
  $("token").value = "";
  const place = restoring ? readPlace() : null;
  $("workspace").value = place?.workspace || (typeof claims.workspace === "string" ? claims.workspace : "");
  if (place) {
    $("namespace").value = place.namespace || "";
    $("prefix").value = place.prefix || "";
  }
  (($("workspace").value && $("namespace")) || $("workspace")).focus();
}

function signOut(reason) {
  stopWatch();
  state.token = null;
  state.listing = null;
  state.entry = null;
  state.revisions.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PLACE_KEY);
  $("who").hidden = true;
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("workbench").hidden = true;
  $("sign-in").hidden = false;
  $("keys").tBodies[0].replaceChildren();
  $("changes").replaceChildren();
  $("more").hidden = true;
  $("keys-summary").textContent = "";
  closeEntry();
  if (reason) alertText(reason);
  else clearAlert();
  say(reason ? "" : "Signed out.");
  $("token").focus();
}

function readPlace() {
  try {
    return JSON.parse(sessionStorage.getItem(PLACE_KEY) || "null");
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- formatting

function dateOf(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function duration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  const units = [
    [86400, "d"],
    [3600, "h"],
    [60, "min"],
  ];
  const out = [];
  for (const [size, name] of units) {
    if (s >= size) {
      out.push(`${Math.floor(s / size)} ${name}`);
      s %= size;
    }
    if (out.length === 2) return out.join(" ");
  }
  if (out.length < 2 && (s > 0 || out.length === 0)) out.push(`${s} s`);
  return out.join(" ");
}

function hexOf(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const line = [];
    for (const byte of bytes.subarray(at, at + 16)) line.push(byte.toString(16).padStart(2, "0"));
    lines.push(line.join(" "));
  }
  return lines.join("\n");
}

/** The value as text, when an editor holds it unchanged; else null. */
function textOf(bytes) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
  if (text.includes("\0") || text.includes("\r")) return null;
  return text;
}

function compareBytes(a, b) {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function unquote(tag) {
  return (tag || "").replace(/^"|"$/g, "");
}

// ---------------------------------------------------------------- listing

function place() {
  const workspace = $("workspace").value.trim();
  const namespace = $("namespace").value;
  const prefix = $("prefix").value;
  if (!workspace) throw new Error("Workspace is empty: type the workspace UUID to look in.");
  segment(namespace, "Namespace");
  sessionStorage.setItem(PLACE_KEY, JSON.stringify({ workspace, namespace, prefix }));
  return { workspace, namespace, prefix };
}

async function list() {
  const where = place();
  const query = { limit: String(PAGE) };
  if (where.prefix) query.prefix = where.prefix;
  const response = await call(url(where.workspace, where.namespace, undefined, query));
  const started = performance.now(); // the response's head is here; its body and the rows follow
  if (!response.ok) throw await failureOf(response);
  const body = await response.json();
  const revision = Number(response.headers.get("Huly-Revision") ?? "0");
  state.listing = { ...where, revision, cursor: body.cursor ?? null, keys: [] };
  $("keys").tBodies[0].replaceChildren();
  appendKeys(body.keys);
  measureRender(started);
  say(`Listed ${body.count} key${body.count === 1 ? "" : "s"} at revision ${revision}.`);
  if (state.watch) startWatch(revision, "after listing");
}

async function more() {
  const listing = state.listing;
  if (!listing || !listing.cursor) return;
  const query = { limit: String(PAGE), cursor: listing.cursor };
  if (listing.prefix) query.prefix = listing.prefix;
  const response = await call(url(listing.workspace, listing.namespace, undefined, query));
  const started = performance.now();
  if (!response.ok) throw await failureOf(response);
  const body = await response.json();
  if (state.listing !== listing) return;
  listing.cursor = body.cursor ?? null;
  appendKeys(body.keys);
  measureRender(started);
  say(`Listed ${listing.keys.length} keys.`);
}

function keyRow(key) {
  const row = document.createElement("tr");
  row.dataset.key = key;
  const cell = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "key";
  const slash = key.lastIndexOf("/");
  if (slash > 0 && slash < key.length - 1) {
    // A key that holds `/` reads as a path: its folders muted, its name plain.
    const folders = document.createElement("span");
    folders.className = "folders";
    folders.textContent = key.slice(0, slash + 1);
    const name = document.createElement("span");
    name.textContent = key.slice(slash + 1);
    button.append(folders, name);
  } else {
    button.textContent = key;
  }
  cell.append(button);
  row.append(cell);
  return row;
}

/** Times a listing from its response to the frame that shows it (performance entries). */
function measureRender(started) {
  requestAnimationFrame(() =>
    setTimeout(() => performance.measure("hulykvs:render-keys", { start: started, end: performance.now() })),
  );
}

function appendKeys(keys) {
  const listing = state.listing;
  const rows = document.createDocumentFragment();
  for (const key of keys) {
    listing.keys.push(key);
    rows.append(keyRow(key));
  }
  $("keys").tBodies[0].append(rows);
  showKeyCount();
}

function showKeyCount() {
  const listing = state.listing;
  $("more").hidden = !listing?.cursor;
  $("keys-summary").textContent = listing
    ? `${listing.keys.length}${listing.cursor ? "+" : ""} in ${listing.namespace}${listing.prefix ? ` under ${listing.prefix}` : ""}`
    : "";
}

/** Puts `key` into the table where byte order says, if the loaded pages reach it. */
function addKeyRow(key) {
  const listing = state.listing;
  if (!listing || !key.startsWith(listing.prefix) || listing.keys.includes(key)) return;
  let at = listing.keys.findIndex((k) => compareBytes(k, key) > 0);
  if (at < 0) {
    if (listing.cursor) return; // beyond the pages loaded: More will bring it
    at = listing.keys.length;
  }
  listing.keys.splice(at, 0, key);
  const body = $("keys").tBodies[0];
  body.insertBefore(keyRow(key), body.rows[at] ?? null);
  showKeyCount();
}

function removeKeyRow(key) {
  const listing = state.listing;
  if (!listing) return;
  const at = listing.keys.indexOf(key);
  if (at < 0) return;
  listing.keys.splice(at, 1);
  $("keys").tBodies[0].rows[at].remove();
  showKeyCount();
}

// ---------------------------------------------------------------- the entry

function closeEntry() {
  state.entry = null;
  state.upload = null;
  $("entry").hidden = true;
  revokeDownload();
}

function revokeDownload() {
  const link = $("download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = "#";
}

async function openKey(key) {
  const where = state.listing ?? place();
  const target = url(where.workspace, where.namespace, key);
  const response = await call(target);
  if (!response.ok) throw await failureOf(response);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const expireAt = response.headers.get("Huly-Expire-At");
  const ttl = response.headers.get("Huly-TTL");
  state.entry = {
    workspace: where.workspace,
    namespace: where.namespace,
    key,
    etag: unquote(response.headers.get("ETag")),
    contentType: response.headers.get("Content-Type") || "application/octet-stream",
    expireAt: expireAt === null ? null : Number(expireAt),
    bytes,
    text: textOf(bytes),
    ttlShown: ttl ?? "",
  };
  state.upload = null;
  showEntry();
  say(`Opened ${key}.`);
}

function showEntry() {
  const entry = state.entry;
  $("entry").hidden = false;
  $("entry-new").hidden = true;
  $("entry-facts").hidden = false;
  $("entry-changed").hidden = true;
  $("entry-title").textContent = entry.key;
  $("fact-etag").textContent = entry.etag;
  $("fact-type").textContent = entry.contentType;
  showExpiry();
  showRevision();
  $("fact-size").textContent = `${entry.bytes.length} bytes`;
  const text = entry.text !== null;
  $("text-value").hidden = !text;
  $("hex-value").hidden = text;
  $("value").readOnly = false;
  $("value").value = text ? entry.text : "";
  $("hex").textContent = text ? "" : hexOf(entry.bytes);
  $("format-json").hidden = !text || !looksJson(entry.text);
  $("ttl").value = entry.ttlShown;
  $("upload").value = "";
  $("file-row").hidden = false;
  revokeDownload();
  const link = $("download");
  link.href = URL.createObjectURL(new Blob([entry.bytes], { type: "application/octet-stream" }));
  link.download = entry.key.slice(entry.key.lastIndexOf("/") + 1) || "value";
  for (const id of ["save", "reload", "delete"]) $(id).hidden = false;
  $("create").hidden = true;
}

function showExpiry() {
  const entry = state.entry;
  if (!entry) return;
  $("fact-expiry").textContent =
    entry.expireAt === null
      ? "never"
      : `${dateOf(entry.expireAt)} (${entry.expireAt > Date.now() / 1000 ? `${duration(entry.expireAt - Date.now() / 1000)} left` : "expired"})`;
}

function showRevision() {
  const entry = state.entry;
  if (!entry) return;
  const seen = state.revisions.get(entry.key);
  $("fact-revision").textContent = seen === undefined ? "none seen yet" : `revision ${seen}`;
}

function looksJson(text) {
  const start = text.trimStart()[0];
  if (start !== "{" && start !== "[") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function noteRevision(key, response) {
  const revision = response.headers.get("Huly-Revision");
  if (revision !== null) state.revisions.set(key, Number(revision));
}

async function save() {
  const entry = state.entry;
  if (!entry) return;
  const headers = {
    "If-Match": `"${entry.etag}"`,
    "Content-Type": entry.contentType,
  };
  const ttl = $("ttl").value.trim();
  if (ttl !== entry.ttlShown.trim()) {
    // The user changed the box: the expiry they typed, or none.
    if (ttl !== "") headers["Huly-TTL"] = ttl;
  } else if (entry.expireAt !== null) {
    headers["Huly-Expire-At"] = String(entry.expireAt);
  }
  let body;
  if (state.upload) body = state.upload;
  else if (entry.text !== null) body = utf8.encode($("value").value);
  else body = entry.bytes;
  const response = await call(url(entry.workspace, entry.namespace, entry.key), {
    method: "PUT",
    headers,
    body,
  });
  if (response.status === 412) {
    throw await refusal(
      response,
      `${entry.key} changed since it was loaded; nothing was written. Your edit is still here; Reload shows the current value.`,
    );
  }
  if (!response.ok) throw await failureOf(response);
  noteRevision(entry.key, response);
  const edited = $("value").value;
  await openKey(entry.key);
  say(`Saved ${entry.key}${edited === $("value").value ? "" : " (and it changed again since)"}.`);
}

async function reload() {
  if (!state.entry) return;
  await openKey(state.entry.key);
  say(`Reloaded ${state.entry.key}.`);
}

async function confirmDelete() {
  const entry = state.entry;
  $("delete-dialog").close();
  if (!entry) return;
  const response = await call(url(entry.workspace, entry.namespace, entry.key), {
    method: "DELETE",
    headers: { "If-Match": `"${entry.etag}"` },
  });
  if (response.status === 412) {
    throw await refusal(response, `${entry.key} changed since it was loaded; it was not deleted. Reload shows the current value.`);
  }
  if (!response.ok) throw await failureOf(response);
  noteRevision(entry.key, response);
  removeKeyRow(entry.key);
  closeEntry();
  say(`Deleted ${entry.key}.`);
}

function newKey() {
  const where = place();
  state.entry = null;
  state.upload = null;
  revokeDownload();
  $("entry").hidden = false;
  $("entry-title").textContent = `New key in ${where.namespace}`;
  $("entry-new").hidden = false;
  $("entry-facts").hidden = true;
  $("entry-changed").hidden = true;
  $("text-value").hidden = false;
  $("hex-value").hidden = true;
  $("format-json").hidden = true;
  $("file-row").hidden = true;
  $("value").value = "";
  $("ttl").value = "";
  $("new-key-name").value = where.prefix;
  for (const id of ["save", "reload", "delete"]) $(id).hidden = true;
  $("create").hidden = false;
  $("new-key-name").focus();
}

async function create() {
  const where = place();
  const key = $("new-key-name").value;
  const headers = {
    "If-None-Match": "*",
    "Content-Type": "text/plain; charset=utf-8",
  };
  const ttl = $("ttl").value.trim();
  if (ttl !== "") headers["Huly-TTL"] = ttl;
  const response = await call(url(where.workspace, where.namespace, key), {
    method: "PUT",
    headers,
    body: utf8.encode($("value").value),
  });
  if (response.status === 412) {
    throw await refusal(response, `${key} already exists; nothing was written. Open it from the list to change it.`);
  }
  if (!response.ok) throw await failureOf(response);
  noteRevision(key, response);
  if (state.listing && state.listing.namespace === where.namespace && state.listing.workspace === where.workspace) {
    addKeyRow(key);
  }
  await openKey(key);
  say(`Created ${key}.`);
}

// ---------------------------------------------------------------- watch

function setWatchState(text) {
  $("watch-state").textContent = text;
}

function stopWatch() {
  if (state.watch) state.watch.controller.abort();
  state.watch = null;
  $("watch").setAttribute("aria-pressed", "false");
  setWatchState("");
}

/** (Re)starts the stream of the listing shown, from `since`. */
function startWatch(since, why) {
  if (state.watch) state.watch.controller.abort();
  const watch = {
    controller: new AbortController(),
    since,
    listing: state.listing,
    queue: [],
    flushing: false,
  };
  state.watch = watch;
  $("watch").setAttribute("aria-pressed", "true");
  setWatchState(`watching from revision ${since}${why ? ` (${why})` : ""}`);
  runWatch(watch);
}

async function toggleWatch() {
  if (state.watch) {
    stopWatch();
    say("Stopped watching.");
    return;
  }
  if (!state.listing) await list();
  if (!state.listing) return;
  startWatch(state.listing.revision);
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

async function runWatch(watch) {
  let pause = 250;
  const { signal } = watch.controller;
  while (!signal.aborted && state.watch === watch) {
    const listing = watch.listing;
    const query = { watch: "", since: String(watch.since) };
    if (listing.prefix) query.prefix = listing.prefix;
    let ended = "the stream ended";
    try {
      const response = await call(url(listing.workspace, listing.namespace, undefined, query), { signal });
      if (response.status === 410) {
        // The changes after our revision are gone: list again and watch from there.
        setWatchState("history compacted: listing again");
        try {
          await list();
        } catch (error) {
          report(error, "Watch: ");
          stopWatch();
        }
        return;
      }
      if (!response.ok) throw await failureOf(response);
      setWatchState(`watching from revision ${watch.since}`);
      pause = 250;
      ended = await readEvents(response, watch);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiFailure && error.status === 401) {
        report(error);
        return;
      }
      if (error instanceof ApiFailure && error.status < 500) {
        report(error, "Watch: ");
        stopWatch();
        return;
      }
      ended = error.message;
    }
    if (signal.aborted) return;
    setWatchState(`reconnecting from revision ${watch.since}: ${ended}`);
    await sleep(pause, signal);
    pause = Math.min(pause * 2, 5000);
  }
}

/** Reads Server-Sent Events until the stream ends; says why it ended. */
async function readEvents(response, watch) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", data: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "the server closed the stream";
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        const ended = dispatch(event, watch);
        if (ended) {
          reader.cancel().catch(() => {});
          return ended;
        }
        event = { type: "message", data: "" };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = value;
        else if (field === "data") event.data += (event.data ? "\n" : "") + value;
      }
    }
  }
}

/** One event of the stream; a reason when it ends the stream. */
function dispatch(event, watch) {
  if (!event.data) return null;
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return null;
  }
  if (event.type === "error") {
    if (typeof data.revision === "number" && data.revision > watch.since) watch.since = data.revision;
    return `the server ended it (${data.code ?? "error"})`;
  }
  if (event.type === "sync") return null;
  if (typeof data.revision !== "number" || data.revision <= watch.since) return null; // seen
  watch.since = data.revision;
  const change = { op: event.type, key: String(data.key), revision: data.revision, etag: data.etag };
  state.revisions.set(change.key, change.revision);
  watch.queue.push(change);
  if (!watch.flushing) {
    watch.flushing = true;
    requestAnimationFrame(() => flushChanges(watch));
  }
  return null;
}

/** Puts the changes that came since the last frame on the page, newest first. */
function flushChanges(watch) {
  watch.flushing = false;
  const changes = watch.queue.splice(0);
  if (state.watch !== watch || changes.length === 0) return;
  const items = document.createDocumentFragment();
  const entry = state.entry;
  let touched = null;
  for (let i = changes.length - 1; i >= Math.max(0, changes.length - KEPT_CHANGES); i--) {
    const change = changes[i];
    const item = document.createElement("li");
    item.className = `change ${change.op}`;
    const op = document.createElement("span");
    op.className = "op";
    op.textContent = change.op;
    const key = document.createElement("span");
    key.className = "mono";
    key.textContent = change.key;
    const revision = document.createElement("span");
    revision.className = "muted";
    revision.textContent = `revision ${change.revision}`;
    item.append(op, " ", key, " ", revision);
    items.append(item);
    if (entry && change.key === entry.key && touched === null) touched = change;
  }
  const list = $("changes");
  list.prepend(items);
  while (list.childElementCount > KEPT_CHANGES) list.lastElementChild.remove();
  if (touched && entry && unquote(touched.etag) !== entry.etag) {
    const note = $("entry-changed");
    note.textContent = `Changed since it was loaded: ${touched.op} at revision ${touched.revision}. Reload shows the current value.`;
    note.hidden = false;
  }
  if (entry) showRevision();
}

// ---------------------------------------------------------------- wiring

function onEnter(id, run) {
  $(id).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      run(event);
    }
  });
}

const doSignIn = action(() => {
  const token = $("token").value.trim();
  if (!token) throw new Error("Token is empty: paste a token to sign in.");
  signIn(token);
  say("Signed in.");
});

$("sign-in-button").addEventListener("click", doSignIn);
onEnter("token", doSignIn);
$("sign-out").addEventListener("click", () => signOut(""));

const doList = action(list);
$("list").addEventListener("click", doList);
for (const id of ["workspace", "namespace", "prefix"]) onEnter(id, doList);
$("more").addEventListener("click", action(more));
$("keys").addEventListener(
  "click",
  action(async (event) => {
    const button = event.target.closest("button.key");
    if (button) await openKey(button.closest("tr").dataset.key);
  }),
);
$("save").addEventListener("click", action(save));
$("reload").addEventListener("click", action(reload));
$("delete").addEventListener(
  "click",
  action(() => {
    if (!state.entry) return;
    $("delete-key").textContent = state.entry.key;
    $("delete-dialog").showModal();
  }),
);
$("confirm").addEventListener("click", action(confirmDelete));
$("cancel").addEventListener("click", () => $("delete-dialog").close());
$("new-key").addEventListener("click", action(newKey));
$("create").addEventListener("click", action(create));
$("watch").addEventListener("click", action(toggleWatch));
$("format-json").addEventListener(
  "click",
  action(() => {
    let parsed;
    try {
      parsed = JSON.parse($("value").value);
    } catch (error) {
      throw new Error(`Not JSON, left as it is: ${error.message}`);
    }
    $("value").value = JSON.stringify(parsed, null, 2);
    say("Formatted as JSON; Save sends it as shown.");
  }),
);
$("value").addEventListener("input", () => {
  // Cheap on every keystroke, even for a value of megabytes: the first character only.
  const start = $("value").value.trimStart()[0];
  $("format-json").hidden = start !== "{" && start !== "[";
});
$("upload").addEventListener("change", () => {
  const file = $("upload").files[0] ?? null;
  state.upload = file;
  say(file ? `Save sends ${file.name} (${file.size} bytes) as the value.` : "");
});
setInterval(showExpiry, 1000);

// A reload keeps the tab's token (sessionStorage), nowhere else.
const kept = sessionStorage.getItem(TOKEN_KEY);
if (kept) {
  try {
    signIn(kept, true);
  } catch (error) {
    signOut(error.message);
  }
} else {
  $("token").focus();
}
