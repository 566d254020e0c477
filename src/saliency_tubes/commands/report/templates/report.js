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
  const panel = $("meta");
  for (const section of data.facts) {
    panel.appendChild(el("h2", section.section));
    const dl = el("dl");
    dl.dataset.section = section.section;
    for (const [key, value] of section.facts) { dl.appendChild(el("dt", key)); dl.appendChild(el("dd", value)); }
    panel.appendChild(dl);
  }
  if (data.scale) document.getElementById("scale").textContent = data.scale + " (the curve stays on the video's scale)";
  data.classes.forEach((c, k) => {
    const o = el("option", c.label);
    o.value = String(k);
    select.appendChild(o);
  });
  overlay.width = W; overlay.height = H;
  // As large as fits: the controls and the curve stay on screen under the video.
  const shown = Math.max(240, Math.min(innerWidth * 0.68, 900, innerHeight * 0.62 * W / H));
  video.style.width = shown + "px";
  video.closest("section").style.width = Math.max(shown, Math.min(innerWidth * 0.68, 900)) + "px";
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

  // The curve's plot area inside the canvas: room for the saliency axis on the left and
  // the time axis (seconds) under it.
  const AXIS = { left: 44, right: 10, top: 8, bottom: 30 };
  function drawCurve() {
    const c = data.classes[current], cv = curve.getContext("2d"), d = devicePixelRatio;
    const w = curve.width = curve.clientWidth * d, h = curve.height = curve.clientHeight * d;
    cv.clearRect(0, 0, w, h);
    let lo = 0, hi = 1e-9;  // a loop, not Math.min(...values): long videos have many frames
    for (const v of c.curve_mean) lo = Math.min(lo, v);
    for (const v of c.curve_max) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    hi = Math.max(hi, lo + 1e-9);
    const L = AXIS.left * d, R = w - AXIS.right * d, T = AXIS.top * d, B = h - AXIS.bottom * d;
    const x = (i) => L + (n > 1 ? i / (n - 1) : 0.5) * (R - L), y = (v) => B - ((v - lo) / (hi - lo)) * (B - T);
    const ink = getComputedStyle(document.body).color;
    cv.font = 11 * d + "px system-ui, sans-serif"; cv.fillStyle = ink; cv.strokeStyle = "#8888"; cv.lineWidth = d;
    cv.beginPath(); cv.moveTo(L, T); cv.lineTo(L, B); cv.lineTo(R, B); cv.stroke();
    cv.textAlign = "right"; cv.textBaseline = "middle";
    for (const v of [lo, (lo + hi) / 2, hi]) { cv.fillText(v.toFixed(2), L - 4 * d, y(v)); }
    cv.save(); cv.translate(10 * d, (T + B) / 2); cv.rotate(-Math.PI / 2); cv.textAlign = "center";
    cv.fillText("saliency", 0, 0); cv.restore();
    // Time ticks at round seconds: a step of 1, 2 or 5 times a power of ten, about 6 of them.
    const span = Math.max(ts[n - 1] - t0, 1e-6), raw = span / 6, p10 = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p10).find((s) => s >= raw);
    const xt = (t) => L + (n > 1 ? t / span : 0.5) * (R - L), digits = step < 1 ? String(step).split(".")[1].length : 0;
    cv.textAlign = "center"; cv.textBaseline = "top";
    for (let t = 0; t <= span + 1e-9; t += step) {
      cv.beginPath(); cv.moveTo(xt(t), B); cv.lineTo(xt(t), B + 3 * d); cv.stroke();
      cv.fillText(t.toFixed(digits), Math.min(xt(t), R - 8 * d), B + 4 * d);
    }
    cv.textAlign = "center"; cv.fillText("time (s)", (L + R) / 2, B + 15 * d);
    if (lo < 0) { cv.strokeStyle = "#8886"; cv.beginPath(); cv.moveTo(L, y(0)); cv.lineTo(R, y(0)); cv.stroke(); }
    for (const [values, colour] of [[c.curve_max, "#999"], [c.curve_mean, "#d33"]]) {
      cv.strokeStyle = colour; cv.lineWidth = 1.5 * devicePixelRatio; cv.beginPath();
      values.forEach((v, i) => (i ? cv.lineTo(x(i), y(v)) : cv.moveTo(x(i), y(v))));
      cv.stroke();
    }
    cv.fillStyle = "#36c"; cv.textAlign = "center"; cv.textBaseline = "bottom";
    for (const k of c.key_frames) {
      cv.beginPath(); cv.arc(x(k), y(c.curve_mean[k]), 3 * d, 0, 7); cv.fill();
      const at = Math.min(Math.max(x(k), L + 18 * d), R - 18 * d);
      cv.fillText((ts[k] - t0).toFixed(2) + " s", at, Math.max(T + 10 * d, y(c.curve_mean[k]) - 4 * d));
    }
    cv.strokeStyle = "#2a2"; cv.lineWidth = 2 * d;
    cv.beginPath(); cv.moveTo(x(frame), T); cv.lineTo(x(frame), B); cv.stroke();
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
  const fromMouse = (ev) => {
    const r = curve.getBoundingClientRect(), inner = r.width - AXIS.left - AXIS.right;
    seek(Math.round(((ev.clientX - r.left - AXIS.left) / inner) * (n - 1)));
  };
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
