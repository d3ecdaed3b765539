// minillm explain: the page's only script. It reads the JSON block written by minillm/explain/page.py and draws
// every view from it; nothing is fetched. One state object (S) holds what is chosen; set() changes it and redraws.
"use strict";
const DATA = JSON.parse(document.getElementById("minillm-data").textContent);
const C = DATA.config, T = DATA.tokens.length, H = C.H, K = C.K, G = H / K, L = C.L;

// ---- decoding the embedded arrays (base64 of little-endian bytes; every browser platform is little-endian) ----
function buffer(b64) {
  const s = atob(b64), u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u.buffer;
}
const u8 = b => new Uint8Array(buffer(b)), u16 = b => new Uint16Array(buffer(b));
const u32 = b => new Uint32Array(buffer(b)), f32 = b => new Float32Array(buffer(b));
const cache = {};
function once(key, make) { return key in cache ? cache[key] : (cache[key] = make()); }

const A = DATA.attention, TRI = T * (T + 1) / 2;  // attention: per layer, H lower triangles of T(T+1)/2 weights
function attnArray(li) { return once("a" + li, () => u8(A.data[li])); }
// The weights query t gives keys 0..T-1 in embedded layer li, head h (h = -1: the mean over all heads).
function attnRow(li, h, t) {
  const a = attnArray(li), row = new Float32Array(T), start = t * (t + 1) / 2;
  const heads = h < 0 ? [...Array(H).keys()] : [h];
  for (const hh of heads) for (let s = 0; s <= t; s++) row[s] += a[hh * TRI + start + s] / 255 / heads.length;
  return row;
}
const lensIds = u32(DATA.lens.ids), lensProbs = u16(DATA.lens.probs), lensFinal = u16(DATA.lens.final);
const N = DATA.next.n, nextIds = u32(DATA.next.ids), nextLogits = f32(DATA.next.logits);
const tailCounts = u32(DATA.next.tail_counts), tailCentres = f32(DATA.next.tail_centres), BINS = DATA.next.bins;

// ---- small helpers ----
const $ = id => document.getElementById(id);
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const word = id => DATA.vocab[id] ?? ("#" + id);
const fmt = (x, d = 3) => x.toFixed(d);
const STOPS = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
function shade(v) {  // 0..1 -> white .. dark blue
  const x = Math.min(1, Math.max(0, v)) * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  return STOPS[i].map((c, j) => Math.round(c + f * (STOPS[i + 1][j] - c)));
}
const css = rgb => `rgb(${rgb.join(",")})`;
const ink = v => (v > 0.55 ? "#fff" : "#1d2330");  // text colour readable on shade(v)
const groupColour = g => `hsl(${Math.round(g * 360 / K + 20)}, 70%, ${K > 1 ? 88 : 94}%)`;
const depthName = l => (l === 0 ? "embedding" : l === L ? "output" : `after layer ${l - 1}`);

// ---- state ----
const S = { query: T - 1, attn: 0, head: 0, mode: "heat", lin: 0, moe: 0, lensCell: null, shade: "top",
            temp: 1, topk: 0, topp: 1 };
function set(change) { Object.assign(S, change); draw(); }

// ---- header and token strip ----
function header() {
  $("model-name").textContent = DATA.model;
  const gen = T - DATA.prompt_tokens;
  let s = `${C.model_type}: ${L} layers, hidden ${C.D}, ${H} query heads sharing ${K} key/value heads (${G} each), ` +
          `vocabulary ${C.V}. ${DATA.prompt_tokens} prompt tokens` + (gen ? ` + ${gen} generated.` : ".");
  if (C.Hv) s += ` Linear attention (Gated DeltaNet) in ${DATA.linear.layers.length} of ${L} layers, ${C.Hv} value heads.`;
  if (C.E) s += ` Mixture of experts: ${C.k} of ${C.E} experts per token in ${DATA.moe.layers.length} layers.`;
  $("model-summary").textContent = s;
  const notes = [];
  if (A.omitted.length) notes.push(`Attention of layers ${A.omitted.join(", ")} not embedded (size cap; see docs/EXPLAIN.md).`);
  if (C.E && !DATA.moe.probs) notes.push("Router probabilities over all experts not embedded (too many experts).");
  $("notes").textContent = notes.join(" ");
  for (const a of document.querySelectorAll("a[data-link]")) {
    const path = DATA.links[a.dataset.link][+a.dataset.i];
    a.textContent = path; a.href = DATA.source_root + path;
  }
}
function tokenChip(t, cls = "") {
  const [id, text, raw, special] = DATA.tokens[t];
  const chip = el("span", { className: "tok " + cls + (special ? " special" : "") +
                                       (t >= DATA.prompt_tokens ? " generated" : ""),
                            title: `position ${t}, id ${id}, vocabulary entry ${JSON.stringify(raw)}` });
  chip.dataset.pos = t;
  chip.append(el("span", { textContent: text }), el("small", { textContent: id }));
  chip.addEventListener("mouseenter", () => set({ query: t }));
  return chip;
}
function buildStrips() {
  for (let t = 0; t < T; t++) { $("token-strip").append(tokenChip(t)); $("attn-tokens").append(tokenChip(t)); }
}
function drawStrips() {
  for (const chip of document.querySelectorAll(".tok")) chip.classList.toggle("query", +chip.dataset.pos === S.query);
}

// A canvas whose columns (or rows) are the tokens: moving the mouse over it moves the query.
function hoverTokens(canvas, alongX) {
  canvas.addEventListener("mousemove", e => {
    const box = canvas.getBoundingClientRect();
    const t = Math.floor(alongX ? (e.clientX - box.left) / box.width * T : (e.clientY - box.top) / box.height * T);
    if (t >= 0 && t < T && t !== S.query) set({ query: t });
  });
}
// The view of one kind of layer (linear attention, MoE): shown, with a layer menu, when the model has such layers.
function layerMenu(view, menu, layers, key) {
  $(view).hidden = false;
  layers.forEach((layer, i) => $(menu).append(el("option", { value: i, textContent: layer })));
  $(menu).addEventListener("change", e => set({ [key]: +e.target.value }));
}

// ---- attention ----
function buildAttention() {
  if (!A.layers.length) { $("attention-view").hidden = true; return; }
  A.layers.forEach((layer, li) => $("attn-layer").append(el("option", { value: li,
    textContent: `${layer}` + (A.sliding[li] ? ` (sliding window ${A.sliding[li]})` : "") })));
  $("attn-layer").addEventListener("change", e => set({ attn: +e.target.value }));
  const heads = $("attn-heads");
  for (let g = 0; g < K; g++) {
    const box = el("span", { className: "kv-group", title: `query heads ${g * G}..${g * G + G - 1} read key/value head ${g}` });
    box.style.background = groupColour(g);
    box.append(el("span", { textContent: `kv ${g}:` }));
    for (let h = g * G; h < (g + 1) * G; h++) {
      const b = el("button", { textContent: `head ${h}` });
      b.dataset.head = h;
      b.addEventListener("click", () => set({ head: h }));
      box.append(b);
    }
    heads.append(box);
  }
  const all = el("button", { textContent: "mean of all heads" });
  all.dataset.head = -1;
  all.addEventListener("click", () => set({ head: -1 }));
  heads.append(el("span", { className: "kv-group" }, all));
  for (const r of document.querySelectorAll("input[name=attn-mode]")) r.addEventListener("change", e => set({ mode: e.target.value }));
  hoverTokens($("attn-heat"), false);  // its rows are the queries
}
let drawnMap = null, drawnGrid = null;
function heatImage(canvas, li, h, cell) {  // the whole [T, T] map of one head into a canvas, cell pixels per weight
  canvas.width = canvas.height = T * cell;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(T * cell, T * cell);
  const a = attnArray(li), heads = h < 0 ? [...Array(H).keys()] : [h];
  for (let t = 0; t < T; t++) for (let s = 0; s < T; s++) {
    let v = 0;
    if (s <= t) for (const hh of heads) v += a[hh * TRI + t * (t + 1) / 2 + s] / 255 / heads.length;
    const rgb = shade(v);
    for (let y = t * cell; y < (t + 1) * cell; y++) for (let x = s * cell; x < (s + 1) * cell; x++) {
      const p = (y * T * cell + x) * 4;
      img.data[p] = rgb[0]; img.data[p + 1] = rgb[1]; img.data[p + 2] = rgb[2]; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return ctx;
}
function drawAttention() {
  if (!A.layers.length) return;
  const li = S.attn, row = attnRow(li, S.head, S.query), layer = A.layers[li];
  $("attn-layer").value = li;
  for (const b of document.querySelectorAll("#attn-heads button")) b.classList.toggle("on", +b.dataset.head === S.head);
  for (const chip of $("attn-tokens").children) {
    const s = +chip.dataset.pos, w = row[s];
    chip.style.background = s <= S.query ? css(shade(w)) : "#f4f4f6";
    chip.style.color = ink(w);
    chip.dataset.weight = fmt(w, 4);
  }
  const head = S.head < 0 ? "the mean of all heads" : `head ${S.head} (key/value head ${Math.floor(S.head / G)})`;
  $("attn-caption").textContent = `layer ${layer}, ${head}: position ${S.query} ` +
    `"${DATA.tokens[S.query][1]}" looks at`;
  const order = [...row.keys()].filter(s => s <= S.query).sort((x, y) => row[y] - row[x]).slice(0, 10);
  $("attn-readout").replaceChildren(...order.map(s => {
    const li_ = el("li", {}, el("span", { className: "w", textContent: fmt(row[s]) }),
                   `position ${s} "${DATA.tokens[s][1]}"`);
    li_.dataset.key = s; li_.dataset.weight = fmt(row[s], 4);
    return li_;
  }));
  const lines = S.mode === "lines";
  $("attn-heat").style.display = lines ? "none" : ""; $("attn-lines").style.display = lines ? "" : "none";
  const cell = Math.max(2, Math.floor(360 / T));
  if (!lines) {
    const key = `${li}/${S.head}`;
    const ctx = drawnMap === key ? $("attn-heat").getContext("2d") : heatImage($("attn-heat"), li, S.head, cell);
    if (drawnMap !== key) { drawnMap = key; cache.heat = ctx.getImageData(0, 0, T * cell, T * cell); }
    ctx.putImageData(cache.heat, 0, 0);
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    ctx.strokeRect(1, S.query * cell, T * cell - 2, cell);
  } else drawLines(row);
  if (drawnGrid !== li) { drawGrid(li); drawnGrid = li; }
  for (const f of $("attn-grid").children) f.classList.toggle("on", +f.dataset.head === S.head);
}
function drawLines(row) {  // BertViz-style: tokens twice, a line from the query to every key, as opaque as its weight
  const svg = $("attn-lines"), rowH = 16, w = 420, NS = "http://www.w3.org/2000/svg";
  svg.setAttribute("width", w); svg.setAttribute("height", T * rowH + 6);
  const kids = [];
  const text = (x, t, anchor) => { const e = document.createElementNS(NS, "text");
    e.setAttribute("x", x); e.setAttribute("y", t * rowH + 14); e.setAttribute("text-anchor", anchor);
    e.setAttribute("font-size", 12); e.setAttribute("font-family", "monospace");
    e.setAttribute("fill", t === S.query ? "#e4572e" : "#1d2330"); e.textContent = DATA.tokens[t][1]; return e; };
  for (let t = 0; t < T; t++) { kids.push(text(140, t, "end"), text(w - 140, t, "start")); }
  for (let s = 0; s <= S.query; s++) {
    const e = document.createElementNS(NS, "line");
    e.setAttribute("x1", 146); e.setAttribute("y1", S.query * rowH + 10);
    e.setAttribute("x2", w - 146); e.setAttribute("y2", s * rowH + 10);
    e.setAttribute("stroke", "#2f6fd6"); e.setAttribute("stroke-width", 2.5);
    e.setAttribute("stroke-opacity", row[s]);
    kids.push(e);
  }
  svg.replaceChildren(...kids);
}
function drawGrid(li) {  // every head of the layer, in its key/value group's colour
  const figs = [];
  for (let h = 0; h < H; h++) {
    const f = el("figure", { title: `head ${h} reads key/value head ${Math.floor(h / G)}` });
    f.dataset.head = h;
    f.style.background = groupColour(Math.floor(h / G));
    const c = el("canvas");
    heatImage(c, li, h, 1);
    f.append(c, el("figcaption", { textContent: `head ${h} · kv ${Math.floor(h / G)}` }));
    f.addEventListener("click", () => set({ head: h }));
    figs.push(f);
  }
  $("attn-grid").replaceChildren(...figs);
}

// ---- linear attention (Gated DeltaNet) ----
const LIN = DATA.linear;
function buildLinear() {
  if (!LIN.layers.length) return;
  layerMenu("linear-view", "lin-layer", LIN.layers, "lin");
  $("lin-rows").textContent = `(rows: value heads 0..${C.Hv - 1} from the top; columns: tokens)`;
  hoverTokens($("lin-decay"), true);
  hoverTokens($("lin-write"), true);
}
function headsByTokens(canvas, values, rows, cellW, cellH) {  // values [T, rows] in 0..1 -> rows x T cells
  canvas.width = T * cellW; canvas.height = rows * cellH;
  const ctx = canvas.getContext("2d");
  for (let t = 0; t < T; t++) for (let r = 0; r < rows; r++) {
    ctx.fillStyle = css(shade(values(t, r))); ctx.fillRect(t * cellW, r * cellH, cellW, cellH);
  }
  ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2; ctx.strokeRect(S.query * cellW + 1, 1, cellW - 2, rows * cellH - 2);
}
function drawLinear() {
  if (!LIN.layers.length) return;
  const i = S.lin, Hv = C.Hv;
  $("lin-layer").value = i;
  const decay = once("d" + i, () => u16(LIN.decay[i])), write = once("w" + i, () => u16(LIN.write[i]));
  const cellW = Math.max(4, Math.floor(720 / T)), cellH = Math.max(6, Math.min(16, Math.floor(160 / Hv)));
  headsByTokens($("lin-decay"), (t, h) => decay[t * Hv + h] / 65535, Hv, cellW, cellH);
  headsByTokens($("lin-write"), (t, h) => write[t * Hv + h] / 65535, Hv, cellW, cellH);
  $("lin-caption").textContent = `layer ${LIN.layers[i]}, position ${S.query} "${DATA.tokens[S.query][1]}":`;
  const rows = [];
  for (let h = 0; h < Hv; h++) {
    const d = decay[S.query * Hv + h] / 65535, b = write[S.query * Hv + h] / 65535;
    const half = d >= 1 ? Infinity : d <= 0 ? 0 : Math.log(2) / -Math.log(d);
    const tr = el("tr", {}, el("td", { textContent: `${h} (k ${Math.floor(h / (Hv / C.Hk))})` }),
                  el("td", { textContent: fmt(d, 4) }), el("td", { textContent: half === Infinity ? "∞" : fmt(half, 1) }),
                  el("td", { textContent: fmt(b, 4) }));
    tr.dataset.head = h; tr.dataset.decay = fmt(d, 5); tr.dataset.write = fmt(b, 5);
    rows.push(tr);
  }
  $("lin-readout").tBodies[0].replaceChildren(...rows);
}

// ---- mixture of experts ----
const MOE = DATA.moe;
function buildMoe() {
  if (!MOE.layers.length) return;
  layerMenu("moe-view", "moe-layer", MOE.layers, "moe");
  $("moe-rows").textContent = `weight of each chosen expert (rows: experts 0..${C.E - 1} from the top; columns: tokens)`;
  hoverTokens($("moe-grid"), true);
}
function drawMoe() {
  if (!MOE.layers.length) return;
  const i = S.moe, E = C.E, k = C.k;
  $("moe-layer").value = i;
  const experts = once("e" + i, () => u16(MOE.experts[i])), weights = once("ew" + i, () => u16(MOE.weights[i]));
  const dense = new Float32Array(T * E), load = new Array(E).fill(0);
  for (let t = 0; t < T; t++) for (let j = 0; j < k; j++) {
    const e = experts[t * k + j];
    dense[t * E + e] = weights[t * k + j] / 65535; load[e]++;
  }
  const cellW = Math.max(4, Math.floor(720 / T)), cellH = Math.max(3, Math.min(14, Math.floor(200 / E)));
  headsByTokens($("moe-grid"), (t, e) => dense[t * E + e], E, cellW, cellH);
  $("moe-load").textContent = "tokens per expert: " + load.map((n, e) => `${e}: ${n}`).join(", ");
  $("moe-caption").textContent = `layer ${MOE.layers[i]}, position ${S.query} "${DATA.tokens[S.query][1]}" chose:`;
  const chosen = [];
  for (let j = 0; j < k; j++) {
    const e = experts[S.query * k + j], w = weights[S.query * k + j] / 65535;
    const li = el("li", {}, el("span", { className: "w", textContent: fmt(w) }), `expert ${e}`);
    li.dataset.expert = e; li.dataset.weight = fmt(w, 5);
    chosen.push(li);
  }
  $("moe-readout").replaceChildren(...chosen);
  if (MOE.probs) {
    const probs = once("ep" + i, () => u8(MOE.probs[i])), picked = new Set(chosen.map(c => +c.dataset.expert));
    const order = [...Array(E).keys()].sort((a, b) => probs[S.query * E + b] - probs[S.query * E + a]).slice(0, 16);
    $("moe-bars").replaceChildren(el("div", { className: "caption", textContent: "router probabilities (softmax over all experts)" }),
      ...order.map(e => bar(`expert ${e}`, probs[S.query * E + e] / 255, picked.has(e) ? probs[S.query * E + e] / 255 : 0,
                            fmt(probs[S.query * E + e] / 255), !picked.has(e))));
  }
}
function bar(label, raw, now, num, cut) {
  const li = el("li", { className: cut ? "cut" : "" }, el("span", { className: "label", textContent: label }));
  const track = el("span", { className: "track" }, el("span", { className: "raw" }), el("span", { className: "now" }));
  track.children[0].style.width = (100 * raw) + "%"; track.children[1].style.width = (100 * now) + "%";
  li.append(track, el("span", { className: "num", textContent: num }));
  return li;
}

// ---- logit lens ----
const TOP = DATA.lens.top;
function lensAt(l, t) {  // [[id, prob], ...] of depth l at position t, most probable first
  const out = [];
  for (let j = 0; j < TOP; j++) { const p = (l * T + t) * TOP + j; out.push([lensIds[p], lensProbs[p] / 65535]); }
  return out;
}
function buildLens() {
  const table = $("lens-table"), head = el("tr", {}, el("th", { textContent: "input →" }));
  for (let t = 0; t < T; t++) { const th = el("th", { textContent: DATA.tokens[t][1] }); th.dataset.pos = t; head.append(th); }
  table.append(head);
  for (let l = 0; l <= L; l++) {
    const tr = el("tr", {}, el("th", { textContent: depthName(l) }));
    for (let t = 0; t < T; t++) {
      const td = el("td", { textContent: word(lensAt(l, t)[0][0]) });
      td.dataset.depth = l; td.dataset.pos = t;
      td.addEventListener("mouseenter", () => set({ lensCell: [l, t], query: t }));
      tr.append(td);
    }
    table.append(tr);
  }
  for (const r of document.querySelectorAll("input[name=lens-shade]")) r.addEventListener("change", e => set({ shade: e.target.value }));
}
function drawLens() {
  for (const td of $("lens-table").querySelectorAll("td")) {
    const l = +td.dataset.depth, t = +td.dataset.pos;
    const v = S.shade === "top" ? lensProbs[(l * T + t) * TOP] / 65535 : lensFinal[l * T + t] / 65535;
    td.style.background = css(shade(v)); td.style.color = ink(v);
    td.classList.toggle("col", t === S.query);
    td.classList.toggle("cell-on", !!S.lensCell && S.lensCell[0] === l && S.lensCell[1] === t);
  }
  for (const th of $("lens-table").querySelectorAll("th[data-pos]")) th.classList.toggle("col", +th.dataset.pos === S.query);
  const [l, t] = S.lensCell || [L, S.query];
  $("lens-caption").textContent = `${depthName(l)}, after position ${t} "${DATA.tokens[t][1]}": the top ${TOP} candidates`;
  $("lens-readout").replaceChildren(...lensAt(l, t).map(([id, p]) => {
    const li = el("li", {}, el("span", { className: "w", textContent: fmt(p) }), `"${word(id)}" (id ${id})`);
    li.dataset.id = id; li.dataset.prob = fmt(p, 5);
    return li;
  }));
}

// ---- the next token: temperature, top-k, top-p, computed here from the carried logits ----
// Returns the raw (temperature 1) and the processed probabilities of the n carried tokens, and the mass of the
// V - n others, from their histogram (each bin's tokens taken as equally likely). Exact whenever top-k <= n.
function nextDistribution(t, temp, topk, topp) {
  const l = nextLogits.subarray(t * N, (t + 1) * N), m = l[0];
  const counts = tailCounts.subarray(t * BINS, (t + 1) * BINS), centres = tailCentres.subarray(t * BINS, (t + 1) * BINS);
  const binMass = scale => Array.from(centres, c => Math.exp((c - m) / scale));  // one token of each bin
  const sum = xs => xs.reduce((a, b) => a + b, 0);
  const rawBin = binMass(1), rawTail = sum(rawBin.map((u, b) => u * counts[b]));
  const rawZ = Array.from(l, x => Math.exp(x - m)), rawSum = sum(rawZ) + rawTail;
  const raw = rawZ.map(z => z / rawSum);
  if (temp === 0) {  // greedy: the argmax (the other processors are skipped)
    return { raw, probs: raw.map((_, i) => (i === 0 ? 1 : 0)), rawTail: rawTail / rawSum, tail: 0, kept: 1 };
  }
  const z = Array.from(l, x => Math.exp((x - m) / temp)), bin = binMass(temp);
  const keep = z.map(() => true), keptCount = Array.from(counts);  // tokens kept in each tail bin
  if (topk > 0 && topk < C.V) {  // keep the k largest logits and any tied with the k-th
    const kth = l[Math.min(topk, N) - 1];
    l.forEach((x, i) => { if (x < kth) keep[i] = false; });
    if (topk <= N) keptCount.fill(0);
  }
  if (topp < 1) {  // in order of probability, drop every token once the ones before it hold p (the top one stays)
    const total = sum(z.map((x, i) => (keep[i] ? x : 0))) + sum(bin.map((u, b) => u * keptCount[b]));
    let cum = 0;
    for (let i = 0; i < N; i++) {
      if (!keep[i]) continue;
      if (i > 0 && cum >= topp) keep[i] = false;
      cum += z[i] / total;
    }
    for (let b = BINS - 1; b >= 0; b--) {  // the tail, its most likely bin first
      const u = bin[b] / total, need = cum >= topp ? 0 : Math.ceil((topp - cum) / u);
      keptCount[b] = Math.min(keptCount[b], need);
      cum += keptCount[b] * u;
    }
  }
  const tailNow = sum(bin.map((u, b) => u * keptCount[b])), total = sum(z.map((x, i) => (keep[i] ? x : 0))) + tailNow;
  const probs = z.map((x, i) => (keep[i] ? x / total : 0));
  return { raw, probs, rawTail: rawTail / rawSum, tail: tailNow / total, kept: probs.filter(p => p > 0).length };
}
function buildNext() {
  $("topk").max = Math.min(N, 100);
  for (const [id, key] of [["temp", "temp"], ["topk", "topk"], ["topp", "topp"]]) {
    $(id).addEventListener("input", e => set({ [key]: +e.target.value }));
  }
}
function drawNext() {
  $("temp-value").textContent = S.temp === 0 ? "0 (greedy)" : fmt(S.temp, 2);
  $("topk-value").textContent = S.topk === 0 ? "off" : S.topk;
  $("topp-value").textContent = S.topp >= 1 ? "off" : fmt(S.topp, 2);
  const t = S.query, d = nextDistribution(t, S.temp, S.topk, S.topp);
  $("next-caption").textContent = `After position ${t} "${DATA.tokens[t][1]}": ${d.kept} of the ${N} most likely tokens` +
    ` kept` + (d.tail > 0 ? `, plus the other ${C.V - N} (${fmt(100 * d.tail, 2)}% together)` : "") +
    `. At temperature 1 the other ${C.V - N} tokens hold ${fmt(100 * d.rawTail, 2)}%.`;
  const rows = [];
  for (let i = 0; i < Math.min(20, N); i++) {
    const id = nextIds[t * N + i];
    const li = bar(`"${word(id)}"`, d.raw[i], d.probs[i], `${fmt(d.raw[i])} → ${fmt(d.probs[i])}`, d.probs[i] === 0);
    li.dataset.id = id; li.dataset.prob = d.probs[i].toFixed(6); li.dataset.raw = d.raw[i].toFixed(6);
    rows.push(li);
  }
  $("next-list").replaceChildren(...rows);
}

// ---- go ----
function draw() { drawStrips(); drawAttention(); drawLinear(); drawMoe(); drawLens(); drawNext(); }
header(); buildStrips(); buildAttention(); buildLinear(); buildMoe(); buildLens(); buildNext();
draw();
window.minillmExplain = { DATA, S, set, attnRow, nextDistribution, lensAt };  // for the browser test and the curious
document.body.dataset.ready = "1";
