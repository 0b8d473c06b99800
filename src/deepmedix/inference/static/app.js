// The viewer: send an image (or a sample) and a question, draw each reasoning step's boxes on the X-ray.
// Boxes arrive in ORIGINAL-image pixels; the canvas shows a preview, so they are scaled by canvas / original.
"use strict";

// Same colours as deepmedix.inference.overlay.STEP_COLOURS: saturated, distinct from each other and from grey.
const STEP_COLOURS = [
  [255, 40, 40], [0, 220, 0], [30, 144, 255], [255, 215, 0],
  [255, 0, 255], [0, 230, 230], [255, 140, 0], [170, 80, 255],
];
const rgb = (c, a = 1) => `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${a})`;
const $ = (id) => document.getElementById(id);

const state = { result: null, image: null, active: null, pinned: null, samples: [] };

function boxLabel(stepIndex, boxIndex) {
  return String(stepIndex + 1) + (boxIndex === 0 ? "" : String.fromCharCode(97 + Math.min(boxIndex, 25)));
}

function draw() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.image) return;
  ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  const r = state.result;
  if (!r) return;
  const sx = canvas.width / r.image_size[0];
  const sy = canvas.height / r.image_size[1];
  const base = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 250));
  const fontPx = Math.max(14, Math.round(Math.min(canvas.width, canvas.height) / 22));
  ctx.font = `bold ${fontPx}px sans-serif`;
  ctx.textBaseline = "top";
  const focus = state.pinned !== null ? state.pinned : state.active;
  r.steps.forEach((step, si) => {
    const colour = STEP_COLOURS[si % STEP_COLOURS.length];
    const dimmed = focus !== null && focus !== si;
    step.boxes.forEach((b, bi) => {
      const x0 = Math.min(b[0], b[2]) * sx, y0 = Math.min(b[1], b[3]) * sy;
      const x1 = Math.max(b[0], b[2]) * sx, y1 = Math.max(b[1], b[3]) * sy;
      ctx.lineWidth = focus === si ? base * 2 : base;
      ctx.strokeStyle = rgb(colour, dimmed ? 0.25 : 1);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      if (dimmed) return;
      const text = boxLabel(si, bi);
      const pad = Math.max(2, Math.round(fontPx / 6));
      const tw = ctx.measureText(text).width;
      const lx = Math.min(Math.max(0, x0), Math.max(0, canvas.width - tw - 2 * pad));
      const ly = y0 - fontPx - 2 * pad >= 0 ? y0 - fontPx - 2 * pad : y0 + ctx.lineWidth;
      ctx.fillStyle = "rgba(0, 0, 0, 0.8)";
      ctx.fillRect(lx, ly, tw + 2 * pad, fontPx + 2 * pad);
      ctx.fillStyle = rgb(colour);
      ctx.fillText(text, lx + pad, ly + pad);
    });
  });
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "muted";
}

function showImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      state.image = img;
      const canvas = $("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      draw();
      resolve(img);
    };
    img.onerror = () => reject(new Error("the browser could not show this image"));
    img.src = url;
  });
}

function renderSteps() {
  const list = $("steps");
  list.replaceChildren();
  const r = state.result;
  r.steps.forEach((step, si) => {
    const li = document.createElement("li");
    li.className = "step";
    li.dataset.step = String(si);
    const chip = document.createElement("span");
    chip.className = step.boxes.length ? "chip" : "chip none";
    if (step.boxes.length) chip.style.background = rgb(STEP_COLOURS[si % STEP_COLOURS.length]);
    chip.textContent = String(si + 1);
    const body = document.createElement("div");
    const text = document.createElement("div");
    text.textContent = step.text;
    body.appendChild(text);
    if (step.boxes.length) {
      const coords = document.createElement("div");
      coords.className = "coords";
      coords.textContent = "image px — " + step.boxes.map((b, bi) => `${boxLabel(si, bi)}: [${b.map((v) => Math.round(v)).join(", ")}]`).join("  ");
      body.appendChild(coords);
    }
    li.append(chip, body);
    li.addEventListener("mouseenter", () => { state.active = si; draw(); });
    li.addEventListener("mouseleave", () => { state.active = null; draw(); });
    li.addEventListener("click", () => {
      state.pinned = state.pinned === si ? null : si;
      document.querySelectorAll(".step").forEach((el) => el.classList.toggle("active", Number(el.dataset.step) === state.pinned));
      draw();
    });
    list.appendChild(li);
  });
  if (!r.steps.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "The model gave no reasoning steps.";
    list.appendChild(li);
  }
}

async function ask(event) {
  event.preventDefault();
  const form = new FormData();
  const file = $("file").files[0];
  const sample = $("sample").value;
  if (file) form.append("image", file);
  else if (sample !== "") form.append("sample", sample);
  else { setStatus("Choose an image or a sample first.", true); return; }
  const task = $("task").value;
  const question = $("question").value;
  if (task === "vqa" || task === "grounding") {
    if (!question.trim()) { setStatus("Type a question.", true); return; }
    form.append("question", question);
  }
  form.append("task", task);
  form.append("reasoning", $("reasoning").checked ? "true" : "false");
  $("ask").disabled = true;
  setStatus("Thinking…");
  try {
    const resp = await fetch("/api/answer", { method: "POST", body: form });
    const body = await resp.json().catch(() => ({ detail: `HTTP ${resp.status}` }));
    if (!resp.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    state.result = body;
    state.active = null;
    state.pinned = null;
    await showImage(body.image_url);
    $("answer").textContent = body.answer || "(no answer)";
    $("answer").className = "answer";
    renderSteps();
    $("raw").textContent = body.completion;
    const nBoxes = body.steps.reduce((n, s) => n + s.boxes.length, 0);
    $("image-info").textContent = `${body.image_name} — ${body.image_size[0]}×${body.image_size[1]} px (model sees ${body.model_input_size[0]}×${body.model_input_size[1]}), ${nBoxes} box${nBoxes === 1 ? "" : "es"}`;
    $("timing").textContent = `answered in ${body.timing.total_s.toFixed(2)} s` + (body.format_valid ? "" : " — the output did not follow the grounded format")
      + (body.truncated ? ` — cut off at its budget of ${body.max_new_tokens} new tokens` : "");
    setStatus("Done.");
    document.body.dataset.state = "answered";
  } catch (err) {
    setStatus(err.message, true);
    document.body.dataset.state = "error";
  } finally {
    $("ask").disabled = false;
  }
}

async function pickSample() {
  const value = $("sample").value;
  if (value === "") return;
  $("file").value = "";
  const s = state.samples[Number(value)];
  const task = { report_findings: "findings", report_impression: "impression" }[s.task] || s.task;
  $("task").value = task;
  $("question").value = task === "vqa" || task === "grounding" ? s.prompt : "";
  state.result = null;
  try {
    await showImage(`/api/samples/${s.index}/image`);
    setStatus(`Sample ${s.id} — reference: ${s.reference}`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function previewFile() {
  const file = $("file").files[0];
  if (!file) return;
  $("sample").value = "";
  state.result = null;
  // DICOM cannot be shown before the server reads it; PNG/JPEG can.
  showImage(URL.createObjectURL(file)).catch(() => { state.image = null; draw(); });
}

async function init() {
  $("ask-form").addEventListener("submit", ask);
  $("file").addEventListener("change", previewFile);
  $("sample").addEventListener("change", pickSample);
  try {
    const health = await (await fetch("/health")).json();
    $("model").textContent = `model: ${health.model}`;
    if (health.samples > 0) {
      state.samples = await (await fetch("/api/samples")).json();
      const select = $("sample");
      state.samples.forEach((s) => {
        const opt = document.createElement("option");
        opt.value = String(s.index);
        opt.textContent = `${s.id} (${s.task})`;
        select.appendChild(opt);
      });
      $("sample-box").hidden = false;
    }
  } catch (err) {
    setStatus("The server is not answering.", true);
  }
  document.body.dataset.state = "ready";
}

init();
