// The live-camera dashboard: a grid of cameras (snapshots polled), one camera large (its MJPEG stream read with
// fetch, so the API key can go in a header), a compliance chart, and events from the Server-Sent Events stream.
// No build step, no library: plain DOM and SVG.
"use strict";

const NAMES = CLASS_NAMES;  // (and the dots' colours: classes.js, from the package's classes.py)
const EVENT_TEXT = {
  "person.entered": "came in", "person.unmasked": "— alert", "person.left": "left",
  "zone.entered": "entered zone", "zone.left": "left zone", "line.crossed": "crossed",
  "camera.down": "camera down: no picture", "camera.up": "camera back",
};
const LISTED_TYPES = Object.keys(EVENT_TEXT);  // every type but the periodic counts
const ALERT_HOLD_MS = 60000;  // a tile stays marked this long after an alert
const $ = (id) => document.getElementById(id);

const state = {
  cameras: new Map(),     // name -> the camera as /v1/cameras lists it
  tiles: new Map(),       // name -> {root, img, ...}
  alerts: new Map(),      // name -> time of the latest alert (ms)
  events: [],             // the open camera's latest events, newest first
  selected: null,         // the open camera's name
  range: "hour",
  streamAbort: null,
  latency: [],            // seconds from a frame reaching the server to its painting here (newest last)
};
window.maskwatchLatency = state.latency;  // read by bench/cameras.py

// -- the API, with the key from this tab's session --
class NeedKey extends Error {}
function headers(extra = {}) {
  const key = sessionStorage.getItem("maskwatch.key");
  return key ? {...extra, "X-API-Key": key} : extra;
}
async function api(path, options = {}) {
  const response = await fetch(path, {cache: "no-store", ...options, headers: headers(options.headers)});
  if (response.status === 401) {
    if (sessionStorage.getItem("maskwatch.key")) {  // a key was sent and refused: say so, not "needs its key"
      sessionStorage.removeItem("maskwatch.key");
      banner("That API key is not accepted: type the server's key.");
    }
    askForKey();
    throw new NeedKey("API key needed");
  }
  if (sessionStorage.getItem("maskwatch.key")) $("key").hidden = true;
  if (!response.ok) throw new Error(`${response.status} ${response.statusText} for ${path}`);
  return response;
}
function askForKey() {
  $("key").hidden = false;
  $("apikey").focus();
}
$("key").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("maskwatch.key", $("apikey").value);
  banner("");
  $("key").hidden = true;
  $("apikey").value = "";
  restartStreams();
});
function banner(text) { $("banner").hidden = !text; $("banner").textContent = text || ""; }

// -- small helpers --
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}
const percent = (x) => (x === null || x === undefined ? "–" : `${Math.round(100 * x)}%`);
const rate = (x) => (x === null || x === undefined ? "–" : x.toFixed(1));
const clock = (iso) => new Date(iso).toLocaleTimeString();
function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
function peopleLine(people) {
  const line = el("div", {class: "people"});
  for (const [name, n] of Object.entries(people || {})) {
    line.append(el("span", {class: name, title: NAMES[name] || name, "data-class": name},
                   el("i", {class: "dot"}), `${n} `, el("small", {text: NAMES[name] || name})));  // (not by colour alone)
  }
  return line;
}
function statusBadge(node, camera) {
  node.className = `badge ${camera.status}`;
  node.textContent = camera.status;
}
function ratesText(camera) {
  return `detecting ${rate(camera.detections_per_s)}/s · showing ${rate(camera.frames_per_s)} frames/s` +
    (camera.source_fps ? ` of ${rate(camera.source_fps)}` : "");
}
function alerting(name) { return Date.now() - (state.alerts.get(name) || 0) < ALERT_HOLD_MS; }

// -- the grid --
function tileFor(camera) {
  let tile = state.tiles.get(camera.name);
  if (tile) return tile;
  const root = el("a", {class: "tile", href: `#/camera/${encodeURIComponent(camera.name)}`,
                        "data-camera": camera.name});
  const badge = el("span", {class: "badge"});
  const alertBadge = el("span", {class: "badge alert", text: "no mask seen"});
  alertBadge.hidden = true;
  const img = el("img", {alt: `${camera.name}, latest picture`});
  const overlay = el("div", {class: "overlay"});
  overlay.hidden = true;
  const info = el("div", {class: "info"});
  root.append(el("div", {class: "head"}, el("span", {class: "name", text: camera.name}),
                 el("span", {}, alertBadge, " ", badge)),
              el("div", {class: "frame"}, img, overlay), info);
  $("grid").append(root);
  tile = {root, badge, alertBadge, img, overlay, info, url: null};
  state.tiles.set(camera.name, tile);
  return tile;
}
function fitFrame(frame, camera) {
  if (camera.size) frame.style.aspectRatio = `${camera.size[0]} / ${camera.size[1]}`;
}
function renderTile(camera) {
  const tile = tileFor(camera);
  fitFrame(tile.img.parentNode, camera);
  statusBadge(tile.badge, camera);
  tile.alertBadge.hidden = !alerting(camera.name);
  tile.root.classList.toggle("alerting", alerting(camera.name));
  tile.overlay.hidden = camera.status === "live";
  tile.overlay.textContent = camera.status === "stopped" ? `stopped: ${camera.message || ""}` : "reconnecting…";
  tile.info.replaceChildren(
    peopleLine(camera.people),
    el("div", {class: "compliance", text: `${percent(camera.compliance)} wear a mask correctly`}),
    el("div", {class: "rates", text: ratesText(camera)}));
}
async function refreshSnapshots() {
  // One camera at a time, about once a second each: a browser opens only a few connections per server.
  while (true) {
    if (state.selected === null && !document.hidden) {
      for (const [name, camera] of state.cameras) {
        if (camera.status === "stopped") continue;
        try {
          const response = await api(`/v1/cameras/${encodeURIComponent(name)}/snapshot.jpg`);
          const tile = state.tiles.get(name);
          const url = URL.createObjectURL(await response.blob());
          tile.img.onload = () => { if (tile.url && tile.url !== url) URL.revokeObjectURL(tile.url); tile.url = url; };
          tile.img.src = url;
        } catch (e) { /* no frame yet, or the key: the camera list shows why */ }
      }
    }
    await sleep(1000);
  }
}

// -- the camera list, polled (and at once after an event of the open camera, so its counts follow) --
let poke = () => {};
async function refreshCameras() {
  while (true) {
    try {
      const body = await (await api("/v1/cameras")).json();
      banner("");
      state.cameras = new Map(body.cameras.map((c) => [c.name, c]));
      state.listed = true;
      $("empty").hidden = body.cameras.length > 0;
      for (const camera of body.cameras) {
        renderTile(camera);
        if (camera.last_alert && !state.alerts.has(camera.name)) {
          state.alerts.set(camera.name, new Date(camera.last_alert.time).getTime());
        }
      }
      if (state.selected) renderDetail();
    } catch (e) {
      if (!(e instanceof NeedKey)) banner("The server does not answer; trying again…");
    }
    await Promise.race([sleep(1000), new Promise((resolve) => { poke = resolve; })]);
  }
}

// -- one camera, large --
function renderDetail() {
  const camera = state.cameras.get(state.selected);
  if (!camera) {  // a name no camera has (a link to a camera gone from the config, a typo): said, nothing shown
    if (!state.listed) return;
    $("d-name").textContent = state.selected;
    $("d-status").textContent = "";
    $("d-overlay").hidden = false;
    $("d-overlay").textContent = `no camera of that name here (cameras: ${[...state.cameras.keys()].join(", ")})`;
    for (const id of ["d-rates", "d-message", "d-compliance"]) $(id).textContent = "";
    $("d-counts").querySelector("tbody").replaceChildren();
    $("d-zones").replaceChildren();
    return;
  }
  $("d-name").textContent = camera.name;
  fitFrame($("d-image").parentNode, camera);
  statusBadge($("d-status"), camera);
  $("d-overlay").hidden = camera.status === "live";
  $("d-overlay").textContent = camera.status === "stopped" ? `stopped: ${camera.message || ""}` : "reconnecting…";
  const latency = state.latency.slice(-30).map((x) => x.latency).sort((a, b) => a - b);
  const delay = latency.length ? ` · delay ${Math.round(1000 * latency[latency.length >> 1])} ms` : "";
  $("d-rates").textContent = ratesText(camera) + delay;
  $("d-message").textContent = camera.status === "live" ? "" : camera.message || "";
  const body = $("d-counts").querySelector("tbody");
  body.replaceChildren();
  for (const [name, n] of Object.entries(camera.people || {})) {
    const now = (camera.present || {})[name] || 0;
    body.append(el("tr", {class: name, "data-class": name},
                   el("td", {}, el("i", {class: "dot"}), NAMES[name] || name),
                   el("td", {class: "n", text: `${n}`, title: "people since the camera started"}),
                   el("td", {class: "n", text: now ? `${now} now` : "", title: "in the picture now"})));
  }
  $("d-compliance").textContent = `${percent(camera.compliance)} wear a mask correctly`;
  const zones = $("d-zones");
  zones.replaceChildren();
  for (const [name, zone] of Object.entries(camera.zones || {})) {
    const people = Object.values(zone.people || {}).reduce((a, b) => a + b, 0);
    zones.append(el("div", {class: "zone", "data-zone": name},
                    el("strong", {text: `zone ${name}`}), `: ${zone.inside} inside now, ${people} seen, `,
                    `${percent(zone.compliance)} masked`));
  }
  for (const [name, line] of Object.entries(camera.lines || {})) {
    zones.append(el("div", {class: "zone", "data-line": name},
                    el("strong", {text: `line ${name}`}), `: ${line.in} in, ${line.out} out`));
  }
}
async function playStream(name, signal) {
  // multipart/x-mixed-replace read by hand: every part has Content-Length and X-Frame-Time.
  const img = $("d-image");
  let shownUrl = null;
  let busy = false;
  while (!signal.aborted) {
    try {
      const response = await api(`/v1/cameras/${encodeURIComponent(name)}/stream`, {signal});
      const reader = response.body.getReader();
      let buffer = new Uint8Array(0);
      while (true) {
        const {value, done} = await reader.read();
        if (done) break;
        const joined = new Uint8Array(buffer.length + value.length);
        joined.set(buffer); joined.set(value, buffer.length);
        buffer = joined;
        while (true) {
          const end = indexOfBlankLine(buffer);
          if (end < 0) break;
          const head = new TextDecoder().decode(buffer.subarray(0, end));
          const length = parseInt((/content-length:\s*(\d+)/i.exec(head) || [])[1], 10);
          const sent = parseFloat((/x-frame-time:\s*([\d.]+)/i.exec(head) || [])[1]);
          if (!(length >= 0) || buffer.length < end + 4 + length) break;
          const jpeg = buffer.slice(end + 4, end + 4 + length);
          buffer = buffer.slice(end + 4 + length);
          if (busy) continue;  // still painting the previous frame: only the newest counts
          busy = true;
          const url = URL.createObjectURL(new Blob([jpeg], {type: "image/jpeg"}));
          img.src = url;
          img.decode().then(() => {
            if (!Number.isNaN(sent)) {
              state.latency.push({camera: name, latency: Date.now() / 1000 - sent, at: Date.now() / 1000});
              if (state.latency.length > 2000) state.latency.splice(0, 1000);
            }
          }).catch(() => {}).finally(() => {
            if (shownUrl) URL.revokeObjectURL(shownUrl);
            shownUrl = url;
            busy = false;
          });
        }
      }
    } catch (e) {
      if (signal.aborted || e instanceof NeedKey) return;
    }
    await sleep(1000);  // the stream ended (server restart, network): open it again
  }
}
function indexOfBlankLine(bytes) {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}

// -- the chart: compliance per time bucket, hand-drawn SVG --
async function refreshChart() {
  while (true) {
    if (state.selected) {
      try { drawChart(await loadReport(state.selected)); } catch (e) { /* next time */ }
    }
    await sleep(10000);
  }
}
async function loadReport(name) {
  const span = state.range === "day" ? 86400 : 3600;
  const bucket = state.range === "day" ? 900 : 60;
  const since = Date.now() / 1000 - span;
  const path = `/v1/cameras/${encodeURIComponent(name)}/report?since=${since}&bucket_s=${bucket}`;
  const report = await (await api(path)).json();
  return {report, since, span, bucket};
}
function drawChart({report, since, span, bucket}) {
  const svg = $("chart");
  const W = Math.max(200, Math.round(svg.clientWidth || 600)), H = 170, left = 34, right = 8, top = 8, bottom = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);  // drawn at the size shown: text is never stretched
  const x = (t) => left + (W - left - right) * (t - since) / span;
  const y = (v) => top + (H - top - bottom) * (1 - v);
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text) n.textContent = text;
    return n;
  };
  svg.replaceChildren();
  for (const v of [0, 0.5, 1]) {
    svg.append(node("line", {class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v)}));
    svg.append(node("text", {class: "axis", x: 2, y: y(v) + 4}, `${v * 100}%`));
  }
  svg.append(node("text", {class: "axis", x: left, y: H - 6}, state.range === "day" ? "24 h ago" : "60 min ago"));
  svg.append(node("text", {class: "axis", x: W - right - 24, y: H - 6}, "now"));
  const points = report.windows.filter((w) => w.compliance !== null && w.start + bucket >= since);
  let path = "";
  let previous = null;
  for (const w of points) {
    const px = x(w.start + bucket / 2), py = y(w.compliance);
    path += (previous !== null && w.start - previous <= 2 * bucket ? "L" : "M") + `${px.toFixed(1)},${py.toFixed(1)}`;
    previous = w.start;
    const people = Object.values(w.people).reduce((a, b) => a + b, 0);
    const dot = node("circle", {cx: px, cy: py, r: 2.5});
    const when = new Date(w.start * 1000).toLocaleTimeString();
    dot.append(node("title", {}, `${when}: ${percent(w.compliance)} of ${people}`));
    svg.append(dot);
  }
  if (path) svg.append(node("path", {class: "series", d: path}));
  $("chart-note").textContent = points.length
    ? `${percent(report.compliance)} of ${Object.values(report.people).reduce((a, b) => a + b, 0)} people ` +
      `in the ${state.range === "day" ? "last day" : "last hour"} wore a mask correctly.`
    : "Nobody seen in this time yet.";
}
document.querySelectorAll(".range button").forEach((button) => button.addEventListener("click", async () => {
  state.range = button.dataset.range;
  document.querySelectorAll(".range button").forEach((b) => b.classList.toggle("on", b === button));
  if (state.selected) drawChart(await loadReport(state.selected));
}));

// -- events: the list of the open camera, alerts for every tile --
function eventItem(event) {
  const alert = event.type === "person.unmasked" || event.type === "camera.down";
  const what = EVENT_TEXT[event.type] || event.type;
  const where = event.zone ? ` ${event.zone}` + (event.direction ? ` (${event.direction})` : "") : "";
  const who = event.track_id == null ? "" : `#${event.track_id} ${NAMES[event.class] || event.class || ""}`;
  const item = el("li", {class: alert ? "alert" : "", "data-type": event.type, "data-id": event.id},
                  el("time", {datetime: event.time, text: clock(event.time)}),
                  el("span", {class: event.class || "", "data-class": event.class || ""}, el("i", {class: "dot"})),
                  el("span", {text: `${who} ${what}${where}` + (event.reason ? ` (${event.reason})` : "")}));
  if (event.snapshot) {
    item.append(el("img", {src: `data:image/jpeg;base64,${event.snapshot}`, alt: "snapshot (face blurred)"}));
  }
  return item;
}
function renderEvents() {
  $("events").replaceChildren(...state.events.map(eventItem));
}
function onEvent(event) {
  if (event.type === "person.unmasked") {
    state.alerts.set(event.camera, Date.now());
    const camera = state.cameras.get(event.camera);
    if (camera) renderTile(camera);
  }
  if (event.camera === state.selected && event.type.startsWith("person.")) poke();
  if (event.camera === state.selected && LISTED_TYPES.includes(event.type)
      && !state.events.some((e) => e.id === event.id)) {
    state.events.unshift(event);
    state.events.length = Math.min(state.events.length, 50);
    renderEvents();
  }
}
async function followEvents() {
  // Server-Sent Events read with fetch (EventSource cannot send the key); Last-Event-ID resumes after a drop.
  let lastId = null;
  while (true) {
    try {
      const response = await api("/v1/events/stream", {headers: lastId ? {"Last-Event-ID": lastId} : {}});
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (true) {
        const {value, done} = await reader.read();
        if (done) break;
        text += value.replace(/\r\n/g, "\n");
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
          const id = block.split("\n").find((l) => l.startsWith("id:"));
          if (id) lastId = id.slice(3).trim();
          if (data.length) onEvent(JSON.parse(data.join("\n")));
        }
      }
    } catch (e) {
      if (e instanceof NeedKey) { await waitForKey(); continue; }
    }
    await sleep(2000);
  }
}
async function waitForKey() { while (!$("key").hidden) await sleep(500); }

// -- views --
async function openCamera(name) {
  state.selected = name;
  state.events = [];
  renderEvents();
  $("grid-view").hidden = true;
  $("detail-view").hidden = false;
  $("d-image").removeAttribute("src");
  renderDetail();
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = new AbortController();
  playStream(name, state.streamAbort.signal);
  try {
    const query = LISTED_TYPES.map((t) => `type=${encodeURIComponent(t)}`).join("&");
    const path = `/v1/events?camera=${encodeURIComponent(name)}&order=newest&limit=50&${query}`;
    const body = await (await api(path)).json();
    const known = new Set(state.events.map((e) => e.id));
    state.events = [...state.events, ...body.events.filter((e) => !known.has(e.id))].slice(0, 50);
    renderEvents();
  } catch (e) { /* the stream of events fills the list */ }
  try { drawChart(await loadReport(name)); } catch (e) { /* next refresh */ }
}
function showGrid() {
  state.selected = null;
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = null;
  $("grid-view").hidden = false;
  $("detail-view").hidden = true;
}
function route() {
  const match = /^#\/camera\/(.+)$/.exec(location.hash);
  if (match) openCamera(decodeURIComponent(match[1])); else showGrid();
}
function restartStreams() { if (state.selected) openCamera(state.selected); }
window.addEventListener("hashchange", route);

route();
refreshCameras();
refreshSnapshots();
refreshChart();
followEvents();
