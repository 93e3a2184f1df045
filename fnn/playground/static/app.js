// fnn playground: draws what the server's fnn run reports; all training happens there.
"use strict";
const $ = (id) => document.getElementById(id);
const FIELDS = ["points", "noise", "test_fraction", "seed", "learning_rate", "batch_size",
                "weight_decay", "dropout", "epochs_per_update"];
const SELECTS = ["data", "activation", "optimizer"];
const state = { id: null, config: null, playing: false, busy: false, train: [], test: [],
                last: null, meter: [] };

async function api(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) });
  const reply = await response.json();
  if (!response.ok) throw new Error(reply.error || response.statusText);
  return reply;
}

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

function readConfig() {
  const c = Object.assign({}, state.config);
  for (const f of FIELDS) {
    const text = $(f).value.trim();
    c[f] = text === "" || isNaN(Number(text)) ? text : Number(text);
  }
  for (const f of SELECTS) c[f] = $(f).value;
  return c;
}

function writeConfig(c) {
  for (const f of FIELDS.concat(SELECTS)) $(f).value = c[f];
  const box = $("layers");
  box.textContent = "";
  c.hidden.forEach((size, i) => {
    const row = document.createElement("div");
    row.className = "layer";
    row.innerHTML = `<span>layer ${i + 1}: <b>${size}</b></span>`;
    for (const [label, delta] of [["\u2212", -1], ["+", 1]]) {
      const b = document.createElement("button");
      b.textContent = label;
      b.onclick = () => { const h = c.hidden.slice(); h[i] += delta; restart({ hidden: h }); };
      row.appendChild(b);
    }
    box.appendChild(row);
  });
  const perceptron = c.model === "perceptron";
  for (const id of ["add-layer", "remove-layer", "activation", "optimizer", "batch_size", "weight_decay",
                    "dropout"])
    $(id).disabled = perceptron;
  $("train-name").textContent = $("test-name").textContent = perceptron ? "error" : "loss";
}

async function restart(changes) {
  const config = Object.assign(readConfig(), changes || {});
  try {
    const reply = await api("/api/run", state.id ? { id: state.id, config } : { config });
    showError("");
    state.id = reply.id;
    state.config = reply.config;
    state.train = []; state.test = []; state.meter = [];
    state.points = { train: reply.train, test: reply.test };
    writeConfig(reply.config);
    $("code").hidden = true;
    draw(reply);
  } catch (e) {
    showError(e.message);
    pause();
    if (state.config) writeConfig(state.config);   // back to the values the run uses
  }
}

async function step() {
  if (state.busy || !state.id) return;
  state.busy = true;
  try {
    const reply = await api("/api/step", { id: state.id });
    const now = performance.now();
    state.meter.push([now, reply.epoch]);
    while (state.meter.length > 2 && now - state.meter[0][0] > 2000) state.meter.shift();
    draw(reply);
  } catch (e) {
    showError(e.message);
    pause();
  } finally {
    state.busy = false;
  }
}

function play() {
  state.playing = true;
  $("play").textContent = "pause";
  $("play").classList.add("playing");
  const loop = async () => {
    if (!state.playing) return;
    await step();
    if (state.playing) requestAnimationFrame(loop);
  };
  loop();
}

function pause() {
  state.playing = false;
  $("play").textContent = "play";
  $("play").classList.remove("playing");
}

// ------------------------------------------------------------------ drawing
const ORANGE = [245, 147, 34], BLUE = [8, 119, 189], WHITE = [250, 250, 250];
function mix(t) {                       // t in [0, 1]: orange (class 0) .. white .. blue (class 1)
  const [a, b, s] = t < 0.5 ? [ORANGE, WHITE, t * 2] : [WHITE, BLUE, t * 2 - 1];
  return a.map((v, i) => Math.round(v + (b[i] - v) * s));
}
function bytes(b64) { return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)); }

function heat(canvas, b64, size) {
  const values = bytes(b64);
  const image = new ImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = mix(values[i] / 255);
    image.data.set([r, g, b, 255], 4 * i);
  }
  const off = document.createElement("canvas");
  off.width = off.height = size;
  off.getContext("2d").putImageData(image, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  return ctx;
}

function drawPoints(ctx, canvas, domain) {
  const scale = (v) => ((v + domain) / (2 * domain)) * canvas.width;
  for (const [set, stroke] of [[state.points.train, "#fff"], [state.points.test, "#000"]]) {
    set.x.forEach(([a, b], i) => {
      ctx.beginPath();
      ctx.arc(scale(a), canvas.height - scale(b), 3.5, 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${(set.y[i] ? BLUE : ORANGE).join(",")})`;
      ctx.fill();
      ctx.strokeStyle = stroke;
      ctx.stroke();
    });
  }
}

function drawNeurons(reply) {
  const box = $("neurons");
  box.textContent = "";
  let k = 0;
  state.config.hidden.forEach((size, layer) => {
    if (state.config.model === "perceptron") return;
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = `<span>layer ${layer + 1}</span>`;
    for (let j = 0; j < size; j++, k++) {
      const c = document.createElement("canvas");
      c.width = c.height = reply.neuron_grid;
      heat(c, reply.neurons[k], reply.neuron_grid);
      row.appendChild(c);
    }
    box.appendChild(row);
  });
}

function drawNetwork(weights) {
  const canvas = $("network"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sizes = [2].concat(weights.map((layer) => layer.b.length));
  const x = (l) => 20 + (l * (canvas.width - 40)) / (sizes.length - 1);
  const y = (l, j) => ((j + 1) * canvas.height) / (sizes[l] + 1);
  let biggest = 1e-6;
  weights.forEach((layer) => layer.w.forEach((row) => row.forEach((v) => { biggest = Math.max(biggest, Math.abs(v)); })));
  weights.forEach((layer, l) => layer.w.forEach((row, i) => row.forEach((v, j) => {
    ctx.beginPath();
    ctx.moveTo(x(l), y(l, i));
    ctx.lineTo(x(l + 1), y(l + 1, j));
    ctx.lineWidth = 0.3 + 4 * Math.abs(v) / biggest;
    ctx.strokeStyle = `rgba(${(v > 0 ? BLUE : ORANGE).join(",")},0.8)`;
    ctx.stroke();
  })));
  sizes.forEach((n, l) => { for (let j = 0; j < n; j++) {
    ctx.beginPath();
    ctx.arc(x(l), y(l, j), 5, 0, 2 * Math.PI);
    ctx.fillStyle = "#333";
    ctx.fill();
  } });
}

function drawNorms(norms) {
  const canvas = $("norms"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!norms.length) { ctx.fillText("(the perceptron rule uses no gradient)", 10, 20); return; }
  const top = Math.max(...norms.map((v) => v || 0), 1e-12);
  const w = (canvas.width - 20) / norms.length;
  norms.forEach((v, l) => {
    const h = ((v || 0) / top) * (canvas.height - 30);
    ctx.fillStyle = "#5a8";
    ctx.fillRect(10 + l * w + 4, canvas.height - 16 - h, w - 8, h);
    ctx.fillStyle = "#333";
    ctx.fillText(`${l + 1}: ${(v || 0).toExponential(1)}`, 10 + l * w + 4, canvas.height - 4);
  });
}

function drawLosses() {
  const canvas = $("losses"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const all = state.train.concat(state.test).filter((v) => v !== null);
  if (!all.length) return;
  const top = Math.max(...all, 1e-6), n = Math.max(state.train.length - 1, 1);
  for (const [series, colour] of [[state.train, "#36c"], [state.test, "#c63"]]) {
    ctx.beginPath();
    series.forEach((v, i) => {
      const px = (i / n) * canvas.width, py = canvas.height - ((v || 0) / top) * (canvas.height - 4);
      i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
    });
    ctx.strokeStyle = colour;
    ctx.stroke();
  }
}

function draw(reply) {
  state.train.push(...reply.train_loss);
  state.test.push(...reply.test_loss);
  const ctx = heat($("output"), reply.output, reply.grid);
  drawPoints(ctx, $("output"), reply.domain);
  drawNeurons(reply);
  drawNetwork(reply.weights);
  drawNorms(reply.grad_norms);
  drawLosses();
  $("epoch").textContent = reply.epoch;
  const last = (s) => (s.length && s[s.length - 1] !== null ? s[s.length - 1] : null);
  const fmt = (v) => (v === null ? "\u2013" : v.toFixed(4));
  $("train-loss").textContent = fmt(last(state.train));
  $("test-loss").textContent = fmt(last(state.test));
  $("test-loss").dataset.value = last(state.test) === null ? "" : String(last(state.test));
  const m = state.meter;
  if (m.length > 1) {
    const speed = ((m[m.length - 1][1] - m[0][1]) * 1000) / (m[m.length - 1][0] - m[0][0]);
    $("speed").textContent = Math.round(speed);
  }
  if (reply.converged) pause();
}

async function showCode() {
  try {
    const reply = await api("/api/code", { id: state.id });
    $("code").textContent = reply.code;
    $("code").hidden = false;
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------ wiring
async function boot() {
  const response = await fetch("/api/options");
  const options = await response.json();
  for (const f of SELECTS) {
    for (const name of options.choices[f]) {
      const o = document.createElement("option");
      o.value = o.textContent = name;
      $(f).appendChild(o);
    }
  }
  state.config = options.defaults;
  writeConfig(state.config);
  for (const f of FIELDS.concat(SELECTS)) $(f).addEventListener("change", () => restart());
  $("play").onclick = () => (state.playing ? pause() : play());
  $("step").onclick = () => { pause(); step(); };
  $("reset").onclick = () => restart();
  $("show-code").onclick = showCode;
  $("add-layer").onclick = () => restart({ hidden: state.config.hidden.concat([4]) });
  $("remove-layer").onclick = () => restart({ hidden: state.config.hidden.slice(0, -1) });
  $("preset-perceptron").onclick = () => restart({ model: "perceptron", hidden: [], activation: "step",
                                                   learning_rate: 1.0 });
  $("preset-network").onclick = () => restart({ model: "network", hidden: [8, 8], activation: "tanh",
                                                learning_rate: 0.03 });
  window.addEventListener("pagehide", () => {
    if (state.id) fetch("/api/close", { method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ id: state.id }) });
  });
  await restart();
}
boot();
