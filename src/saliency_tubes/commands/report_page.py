"""The page of ``report.html``: hand-written HTML, CSS and JavaScript, no library, no network.

The page reads its data from one ``<script type="application/json">`` element (written by
:mod:`saliency_tubes.commands.report`, with ``<``, ``>`` and ``&`` escaped so no string can
close it) and builds everything with DOM calls: every class name, path and manifest string
becomes ``textContent``, never HTML. No ``eval``, no inline event handlers.
"""

from __future__ import annotations

__all__ = ["PAGE"]

_STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fafafa; --muted: #666; --warn: #b00020; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #161616; --muted: #aaa; --warn: #ff6b81; } }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 10px 16px; border-bottom: 1px solid #8884; }
header h1 { font-size: 17px; margin: 0; }
.warn { color: var(--warn); font-weight: 600; }
main { display: flex; gap: 16px; padding: 12px 16px; align-items: flex-start; flex-wrap: wrap; }
#stage { position: relative; display: inline-block; background: #000; line-height: 0; }
#stage video { display: block; width: min(68vw, 900px); height: auto; }
#stage canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.controls label { display: inline-flex; gap: 6px; align-items: center; }
#curve { width: 100%; height: 90px; cursor: pointer; display: block; border: 1px solid #8884; }
aside { flex: 1 1 280px; max-width: 420px; }
aside dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; }
aside dt { color: var(--muted); }
aside dd { margin: 0; overflow-wrap: anywhere; }
.hint { color: var(--muted); font-size: 12px; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); return e; };
  const $ = (role) => document.querySelector('[data-role="' + role + '"]');
  const video = $("video"), overlay = $("overlay"), opacity = $("opacity"), select = $("class");
  const style = document.getElementById("style"), curve = $("curve"), frameLabel = document.getElementById("frame");
  const ts = data.video.timestamps, t0 = ts[0], n = ts.length;
  const lut = data.colormap, grid = data.grid, g = data.geometry, H = data.video.size[0], W = data.video.size[1];
  const maps = new Map();
  let current = 0, frame = 0;

  document.title = data.title;
  document.getElementById("title").textContent = data.title;
  document.getElementById("model").textContent = data.model;
  if (data.warning) { const w = document.getElementById("warning"); w.textContent = "; caveat: " + data.warning; }
  const panel = document.getElementById("facts");
  for (const [key, value] of data.facts) {
    panel.appendChild(el("dt", key));
    panel.appendChild(el("dd", typeof value === "string" ? value : JSON.stringify(value)));
  }
  data.classes.forEach((c, k) => {
    const o = el("option", c.label);
    o.value = String(k);
    select.appendChild(o);
  });
  overlay.width = W; overlay.height = H;
  // As large as fits: the controls and the curve stay on screen under the video.
  video.style.width = Math.max(240, Math.min(innerWidth * 0.68, 900, innerHeight * 0.62 * W / H)) + "px";
  const ctx = overlay.getContext("2d", { willReadFrequently: true });
  const small = document.createElement("canvas");
  small.width = grid[1]; small.height = grid[0];
  const sctx = small.getContext("2d");
  // The unseen borders: dimmed by half under soft grey stripes, as in the videos
  // (w = 0.3 (1 + cos(2 pi (x + y) / 12)) / 2 of grey 160).
  const hatch = (() => {
    const p = document.createElement("canvas"); p.width = 12; p.height = 12;
    const c = p.getContext("2d"), img = c.createImageData(12, 12);
    for (let y = 0; y < 12; y++) for (let x = 0; x < 12; x++) {
      const i = 4 * (12 * y + x), w = 0.15 * (1 + Math.cos((2 * Math.PI * (x + y)) / 12));
      img.data[i] = img.data[i + 1] = img.data[i + 2] = 160; img.data[i + 3] = Math.round(255 * w);
    }
    c.putImageData(img, 0, 0);
    return ctx.createPattern(p, "repeat");
  })();

  async function decode(k) {
    if (maps.has(k)) return maps.get(k);
    const raw = Uint8Array.from(atob(data.classes[k].maps), (ch) => ch.charCodeAt(0));
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    const size = grid[0] * grid[1];
    for (let i = size; i < bytes.length; i++) bytes[i] = (bytes[i] + bytes[i - size]) & 255;  // undo the deltas
    maps.set(k, bytes);
    return bytes;
  }

  function frameAt(time) {
    const t = time + t0;
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (ts[mid] <= t + 1e-4) lo = mid; else hi = mid - 1; }
    return lo;
  }

  function draw() {
    const bytes = maps.get(current);
    ctx.clearRect(0, 0, W, H);
    // Unseen borders: what the model never saw, dimmed and hatched as in the videos.
    ctx.fillStyle = "rgba(0,0,0,0.5)";
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = hatch;
    ctx.fillRect(0, 0, W, H);
    ctx.clearRect(g.left, g.top, g.width, g.height);
    if (!bytes) return;
    const size = grid[0] * grid[1];
    const index = Math.min(Math.floor(frame / data.step), bytes.length / size - 1);
    const img = sctx.createImageData(grid[1], grid[0]);
    const a = Number(opacity.value);
    const signed = data.classes[current].signed;
    const heat = style.value === "heat" || signed;  // a contrast is shown in its diverging map
    const colours = signed ? data.diverging : lut;
    for (let i = 0; i < size; i++) {
      const s = bytes[index * size + i];
      if (heat) {
        img.data[4 * i] = colours[3 * s]; img.data[4 * i + 1] = colours[3 * s + 1]; img.data[4 * i + 2] = colours[3 * s + 2];
        img.data[4 * i + 3] = Math.round(255 * a);
      } else {  // focus: the frame where salient, faded to black elsewhere
        const keep = data.floor + (1 - data.floor) * (s / 255);
        img.data[4 * i + 3] = Math.round(255 * a * (1 - keep));
      }
    }
    sctx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(small, g.left, g.top, g.width, g.height);
    frameLabel.textContent = "frame " + frame + " / " + (n - 1) + "  t = " + (ts[frame] - t0).toFixed(3) + " s";
    drawCurve();
  }

  function drawCurve() {
    const c = data.classes[current], cv = curve.getContext("2d");
    const w = curve.width = curve.clientWidth * devicePixelRatio, h = curve.height = curve.clientHeight * devicePixelRatio;
    cv.clearRect(0, 0, w, h);
    let lo = 0, hi = 1e-9;  // a loop, not Math.min(...values): long videos have many frames
    for (const v of c.curve_mean) lo = Math.min(lo, v);
    for (const v of c.curve_max) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    hi = Math.max(hi, lo + 1e-9);
    const x = (i) => (n > 1 ? i / (n - 1) : 0.5) * (w - 2) + 1, y = (v) => h - 3 - ((v - lo) / (hi - lo)) * (h - 6);
    if (lo < 0) { cv.strokeStyle = "#8886"; cv.beginPath(); cv.moveTo(0, y(0)); cv.lineTo(w, y(0)); cv.stroke(); }
    for (const [values, colour] of [[c.curve_max, "#999"], [c.curve_mean, "#d33"]]) {
      cv.strokeStyle = colour; cv.lineWidth = 1.5 * devicePixelRatio; cv.beginPath();
      values.forEach((v, i) => (i ? cv.lineTo(x(i), y(v)) : cv.moveTo(x(i), y(v))));
      cv.stroke();
    }
    cv.fillStyle = "#36c";
    for (const k of c.key_frames) { cv.beginPath(); cv.arc(x(k), y(c.curve_mean[k]), 3 * devicePixelRatio, 0, 7); cv.fill(); }
    cv.strokeStyle = "#2a2"; cv.lineWidth = 2 * devicePixelRatio;
    cv.beginPath(); cv.moveTo(x(frame), 0); cv.lineTo(x(frame), h); cv.stroke();
  }

  function show(f) { frame = Math.max(0, Math.min(n - 1, f)); draw(); }
  function seek(f) { f = Math.max(0, Math.min(n - 1, f)); video.currentTime = ts[f] - t0 + 0.5 / data.video.fps * 0.5; show(f); }

  async function choose(k) { current = k; await decode(k); draw(); }

  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const tick = (_now, meta) => { show(frameAt(meta.mediaTime)); video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  } else {
    const tick = () => { show(frameAt(video.currentTime)); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  }
  video.addEventListener("seeked", () => show(frameAt(video.currentTime)));
  opacity.addEventListener("input", draw);
  style.addEventListener("change", draw);
  select.addEventListener("change", () => choose(Number(select.value)));
  let dragging = false;
  const fromMouse = (ev) => { const r = curve.getBoundingClientRect(); seek(Math.round(((ev.clientX - r.left) / r.width) * (n - 1))); };
  curve.addEventListener("mousedown", (ev) => { dragging = true; video.pause(); fromMouse(ev); });
  window.addEventListener("mousemove", (ev) => { if (dragging) fromMouse(ev); });
  window.addEventListener("mouseup", () => { dragging = false; });
  window.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") { video.pause(); seek(frame + (ev.key === "ArrowRight" ? 1 : -1)); ev.preventDefault(); }
    else if (ev.key === " ") { if (video.paused) video.play(); else video.pause(); ev.preventDefault(); }
  });
  window.addEventListener("resize", drawCurve);
  choose(0).then(() => { document.body.dataset.ready = "1"; });
})();
"""

PAGE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; media-src * data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>saliency-tubes report</title>
<style>"""
    + _STYLE
    + """</style>
</head>
<body>
<header><h1 id="title"></h1><div data-role="model"><span id="model"></span><span id="warning" class="warn"></span></div></header>
<main>
<section>
  <div id="stage">
    <video data-role="video" src="__VIDEO__" controls muted playsinline preload="auto"></video>
    <canvas data-role="overlay"></canvas>
  </div>
  <div class="controls">
    <label>class <select data-role="class"></select></label>
    <label>tube <select id="style"><option value="heat">heat</option><option value="focus">focus</option></select></label>
    <label>opacity <input data-role="opacity" type="range" min="0" max="1" step="0.01" value="__OPACITY__"></label>
    <span id="frame" class="hint"></span>
  </div>
  <canvas data-role="curve" id="curve" title="temporal importance: click or drag to seek"></canvas>
  <div class="hint">red: mean saliency per frame; grey: its maximum; blue dots: key frames.
  Click or drag on the curve to seek; arrow keys step one frame; space plays and pauses.</div>
</section>
<aside><dl id="facts"></dl></aside>
</main>
<script type="application/json" id="report-data">__DATA__</script>
<script>"""
    + _SCRIPT
    + """</script>
</body>
</html>
"""
)
