// deepmedix review page: plain JS, no dependencies. Every rating is POSTed at once; the server's reply is the truth.
"use strict";

const SIDES = ["left", "right"];
const state = {
  me: null,            // /api/me
  index: 0,            // position in my sample list
  sample: null,        // /api/samples/{id}
  cursor: 0,           // index into the focus list of (side, step)
  locked: false,
};

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  if (response.status === 401) {
    showSignin();
    throw new Error("not signed in");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function showSignin() {
  $("#signin").hidden = false;
  $("#app").hidden = true;
}

function setStatus(text, kind = "ok") {
  const el = $("#status");
  el.textContent = text;
  el.className = kind;
}

// The focus list: every step of Left then of Right; a side without steps still gets one stop (for completeness).
function focusList() {
  const list = [];
  for (const side of SIDES) {
    const n = state.sample[side].steps.length;
    if (n === 0) list.push({ side, step: null });
    for (let i = 0; i < n; i++) list.push({ side, step: i });
  }
  return list;
}

function current() {
  const list = focusList();
  state.cursor = Math.max(0, Math.min(state.cursor, list.length - 1));
  return list[state.cursor];
}

function renderBoxes(side, step) {
  const svg = $("#overlay");
  const [w, h] = state.sample.image_size;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  if (step === null || step === undefined) return;
  const boxes = state.sample[side].steps[step].boxes || [];
  const ns = "http://www.w3.org/2000/svg";
  const stroke = Math.max(2, Math.round(Math.max(w, h) / 250));
  boxes.forEach((b, i) => {
    const rect = document.createElementNS(ns, "rect");
    const [x0, y0, x1, y1] = b;
    rect.setAttribute("x", Math.min(x0, x1));
    rect.setAttribute("y", Math.min(y0, y1));
    rect.setAttribute("width", Math.abs(x1 - x0));
    rect.setAttribute("height", Math.abs(y1 - y0));
    rect.setAttribute("class", `box box-${side}`);
    rect.setAttribute("stroke-width", stroke);
    svg.appendChild(rect);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", Math.min(x0, x1) + stroke);
    label.setAttribute("y", Math.max(Math.min(y0, y1) - stroke, stroke * 6));
    label.setAttribute("class", `box-label box-${side}`);
    label.setAttribute("font-size", stroke * 7);
    label.textContent = `${side === "left" ? "L" : "R"}${step + 1}${boxes.length > 1 ? "." + (i + 1) : ""}`;
    svg.appendChild(label);
  });
}

function ratingKey(dim, side, step) {
  if (dim === "grounded_preference" || dim === "overall_preference") return dim;
  if (dim === "completeness") return `${dim}/${side}`;
  return `${dim}/${side}/${step}`;
}

function renderRatings() {
  const r = state.sample.ratings;
  for (const btn of $$("button[data-dim]")) {
    const side = btn.closest("[data-side]")?.dataset.side;
    const stepEl = btn.closest("[data-step]");
    const step = stepEl ? Number(stepEl.dataset.step) : null;
    const key = ratingKey(btn.dataset.dim, side, step);
    btn.classList.toggle("on", r[key] === btn.dataset.value);
    btn.setAttribute("aria-pressed", r[key] === btn.dataset.value ? "true" : "false");
    btn.disabled = state.locked;
  }
  $("#sample-state").textContent = state.sample.complete ? "✓ sample complete" : "";
  $("#sample-state").className = state.sample.complete ? "done" : "";
}

function renderCursor() {
  const cur = current();
  for (const li of $$("li.step")) {
    li.classList.toggle("current", li.dataset.side === cur.side && Number(li.dataset.step) === cur.step);
  }
  for (const side of SIDES) $(`#side-${side}`).classList.toggle("current-side", side === cur.side);
  renderBoxes(cur.side, cur.step);
  const li = $(`li.step[data-side="${cur.side}"][data-step="${cur.step}"]`);
  if (li) li.scrollIntoView({ block: "nearest" });
}

function renderProgress() {
  const me = state.me;
  const done = me.samples.filter((s) => s.complete).length;
  $("#progress").textContent = `${done} / ${me.samples.length} complete`;
  $("#progress-bar").max = Math.max(1, me.samples.length);
  $("#progress-bar").value = done;
  $("#position").textContent = `Sample ${state.index + 1} / ${me.samples.length}`;
  $("#finish").disabled = state.locked || done < me.samples.length;
}

function renderSample() {
  const s = state.sample;
  $("#question").textContent = s.question || "(no question)";
  $("#reference").textContent = s.reference || "(none)";
  for (const side of SIDES) {
    const root = $(`#side-${side}`);
    const ol = $("ol.steps", root);
    ol.replaceChildren();
    s[side].steps.forEach((step, i) => {
      const li = document.createElement("li");
      li.className = "step";
      li.dataset.side = side;
      li.dataset.step = String(i);
      const text = document.createElement("div");
      text.className = "step-text";
      text.textContent = step.text;
      li.appendChild(text);
      const controls = document.createElement("div");
      controls.className = "step-controls";
      for (const [dim, title] of [["relevance", "Relevance"], ["correctness", "Correctness"]]) {
        const group = document.createElement("span");
        group.className = "rate-row";
        group.append(title + " ");
        for (const [value, label] of [["yes", "Yes"], ["no", "No"]]) {
          const b = document.createElement("button");
          b.dataset.dim = dim;
          b.dataset.value = value;
          b.textContent = label;
          group.appendChild(b);
        }
        controls.appendChild(group);
      }
      li.appendChild(controls);
      li.addEventListener("mouseenter", () => renderBoxes(side, i));
      li.addEventListener("mouseleave", () => renderCursor());
      li.addEventListener("click", (ev) => {
        if (ev.target.tagName === "BUTTON") return;
        state.cursor = focusList().findIndex((f) => f.side === side && f.step === i);
        renderCursor();
      });
      ol.appendChild(li);
    });
    if (s[side].steps.length === 0) {
      const li = document.createElement("li");
      li.className = "no-steps";
      li.textContent = "(no reasoning steps)";
      ol.appendChild(li);
    }
    $(".answer-text", root).textContent = s[side].answer || "(no final answer)";
  }
  $("#cxr").src = s.image_url;
  renderRatings();
  renderCursor();
  renderProgress();
}

async function loadSample(index) {
  const list = state.me.samples;
  if (list.length === 0) return;
  state.index = Math.max(0, Math.min(index, list.length - 1));
  history.replaceState(null, "", `#${state.index + 1}`);
  state.sample = await api(`/api/samples/${encodeURIComponent(list[state.index].sample_id)}`);
  state.cursor = 0;
  renderSample();
}

// Saves go out one at a time, in the order made, so the last rating pressed is the one stored.
let saveChain = Promise.resolve();
let pendingSaves = 0;

function rate(dim, value, side = null, step = null) {
  if (state.locked || !state.sample) return;
  const sample = state.sample;
  const payload = { sample_id: sample.sample_id, dimension: dim, value };
  if (dim === "relevance" || dim === "correctness") {
    if (step === null || step === undefined) return setStatus("this reasoning has no steps to rate", "warn");
    payload.side = side;
    payload.step = step;
  } else if (dim === "completeness") {
    payload.side = side;
  }
  sample.ratings[ratingKey(dim, side, step)] = value;  // shown at once; the server's reply confirms it
  renderRatings();
  pendingSaves += 1;
  setStatus("saving…", "pending");
  saveChain = saveChain.then(async () => {
    try {
      const reply = await api("/api/ratings", { method: "POST", body: JSON.stringify(payload) });
      const entry = state.me.samples.find((s) => s.sample_id === payload.sample_id);
      if (entry) entry.complete = reply.complete;
      pendingSaves -= 1;
      if (state.sample && state.sample.sample_id === payload.sample_id && pendingSaves === 0) {
        state.sample.ratings = reply.ratings;
        state.sample.complete = reply.complete;
        renderRatings();
      }
      renderProgress();
      if (pendingSaves === 0) setStatus("saved", "ok");
    } catch (err) {
      pendingSaves -= 1;
      setStatus(`NOT saved — ${err.message}`, "error");
      // Show what the server really holds again.
      try {
        const fresh = await api(`/api/samples/${encodeURIComponent(sample.sample_id)}`);
        if (state.sample === sample) {
          state.sample.ratings = fresh.ratings;
          renderRatings();
        }
      } catch (_) { /* the error above is already shown */ }
    }
  });
}

function nextIncomplete() {
  const list = state.me.samples;
  for (let k = 1; k <= list.length; k++) {
    const i = (state.index + k) % list.length;
    if (!list[i].complete) return i;
  }
  return null;
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(ev.target.tagName)) return;
  if (!state.sample) return;
  const cur = current();
  const max = focusList().length - 1;
  const actions = {
    j: () => { state.cursor = Math.min(state.cursor + 1, max); renderCursor(); },
    ArrowDown: () => { state.cursor = Math.min(state.cursor + 1, max); renderCursor(); },
    k: () => { state.cursor = Math.max(state.cursor - 1, 0); renderCursor(); },
    ArrowUp: () => { state.cursor = Math.max(state.cursor - 1, 0); renderCursor(); },
    h: () => { state.cursor = focusList().findIndex((f) => f.side === "left"); renderCursor(); },
    l: () => { state.cursor = focusList().findIndex((f) => f.side === "right"); renderCursor(); },
    r: () => rate("relevance", "yes", cur.side, cur.step),
    R: () => rate("relevance", "no", cur.side, cur.step),
    c: () => rate("correctness", "yes", cur.side, cur.step),
    C: () => rate("correctness", "no", cur.side, cur.step),
    m: () => rate("completeness", "yes", cur.side),
    M: () => rate("completeness", "no", cur.side),
    1: () => rate("grounded_preference", "left"),
    2: () => rate("grounded_preference", "right"),
    3: () => rate("overall_preference", "left"),
    4: () => rate("overall_preference", "right"),
    n: () => loadSample(state.index + 1),
    ArrowRight: () => loadSample(state.index + 1),
    p: () => loadSample(state.index - 1),
    ArrowLeft: () => loadSample(state.index - 1),
    u: () => { const i = nextIncomplete(); if (i !== null) loadSample(i); },
    "?": () => { $("#help").hidden = !$("#help").hidden; },
    Escape: () => { $("#help").hidden = true; },
  };
  const action = actions[ev.key];
  if (action) {
    ev.preventDefault();
    action();
  }
}

function onClick(ev) {
  const btn = ev.target.closest("button[data-dim]");
  if (!btn) return;
  const side = btn.closest("[data-side]")?.dataset.side ?? null;
  const stepEl = btn.closest("[data-step]");
  const step = stepEl ? Number(stepEl.dataset.step) : null;
  if (stepEl) {
    state.cursor = focusList().findIndex((f) => f.side === side && f.step === step);
    renderCursor();
  }
  rate(btn.dataset.dim, btn.dataset.value, side, step);
}

async function finish() {
  if (!confirm("Finish and lock all your ratings? You will not be able to change them afterwards.")) return;
  try {
    await api("/api/finish", { method: "POST" });
    state.locked = true;
    $("#locked").hidden = false;
    renderRatings();
    renderProgress();
    setStatus("finished", "ok");
  } catch (err) {
    setStatus(err.message, "error");
  }
}

async function start() {
  try {
    state.me = await api("/api/me");
  } catch (err) {
    if (err.message !== "not signed in") setStatus(err.message, "error");
    return;
  }
  $("#app").hidden = false;
  $("#who").textContent = `${state.me.annotator} · group ${state.me.group}`;
  state.locked = Boolean(state.me.finished_at);
  $("#locked").hidden = !state.locked;
  if (state.me.samples.length === 0) {
    setStatus("no samples are assigned to you", "warn");
    return;
  }
  // Resume: the sample in the address (after a reload), else the first one with unrated items.
  const fromHash = Number.parseInt(location.hash.slice(1), 10);
  let index = Number.isFinite(fromHash) ? fromHash - 1 : state.me.samples.findIndex((s) => !s.complete);
  if (index < 0) index = 0;
  await loadSample(index);
}

document.addEventListener("keydown", onKey);
document.addEventListener("click", onClick);
$("#prev").addEventListener("click", () => loadSample(state.index - 1));
$("#next").addEventListener("click", () => loadSample(state.index + 1));
$("#finish").addEventListener("click", finish);
$("#help-toggle").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });
start();
