// The run page: the model in a three.js viewer, the seven standard views
// with the renderer's cameras, and the parameters, which rebuild the part
// through the studio's tweak API (the newest change wins).
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const root = document.getElementById("run");
let state = JSON.parse(root.dataset.state);

// cadloop's frame is Z-up; model.glb's node turns it onto glTF's Y-up:
// (x, y, z) -> (x, z, -y). The views: where the camera looks from, and up.
const toThree = ([x, y, z]) => new THREE.Vector3(x, z, -y);
const VIEWS = {
  front: [[0, -1, 0], [0, 0, 1]],
  back: [[0, 1, 0], [0, 0, 1]],
  left: [[-1, 0, 0], [0, 0, 1]],
  right: [[1, 0, 0], [0, 0, 1]],
  top: [[0, 0, 1], [0, 1, 0]],
  bottom: [[0, 0, -1], [0, -1, 0]],
  iso: [[1, -1, 1], [0, 0, 1]],
};

const holder = document.getElementById("viewer");
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
renderer.setClearColor(0xffffff);
holder.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.add(new THREE.HemisphereLight(0xffffff, 0x8890a0, 2.2));
const sun = new THREE.DirectionalLight(0xffffff, 1.6);
scene.add(sun);
const camera = new THREE.PerspectiveCamera(35, 1, 0.0001, 100);
const controls = new OrbitControls(camera, renderer.domElement);
controls.addEventListener("change", draw);
let part = null;
let showEdges = true;
let currentView = "iso";

function draw() {
  sun.position.copy(camera.position);
  renderer.render(scene, camera);
}

function resize() {
  const { clientWidth: w, clientHeight: h } = holder;
  renderer.setSize(w, h, false);
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
  draw();
}
window.addEventListener("resize", resize);

/// Puts the camera on `view`'s axis, far enough to see the whole part.
function look(view) {
  currentView = view;
  if (!part) return;
  const box = new THREE.Box3().setFromObject(part);
  const sphere = box.getBoundingSphere(new THREE.Sphere());
  const [from, up] = VIEWS[view];
  const direction = toThree(from).normalize();
  const distance = sphere.radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2)) * 1.1;
  camera.up.copy(toThree(up).normalize());
  camera.position.copy(sphere.center).addScaledVector(direction, distance);
  camera.near = distance / 100;
  camera.far = distance * 10;
  camera.updateProjectionMatrix();
  controls.target.copy(sphere.center);
  controls.update();
  draw();
}

async function loadModel(url) {
  const gltf = await new GLTFLoader().loadAsync(url);
  if (part) scene.remove(part);
  part = gltf.scene;
  const meshes = [];
  part.traverse((node) => { if (node.isMesh) meshes.push(node); });
  for (const mesh of meshes) {
    // The faces sit a little behind their edges, so the lines are drawn whole.
    mesh.material.polygonOffset = true;
    mesh.material.polygonOffsetFactor = 1;
    mesh.material.polygonOffsetUnits = 1;
    // Creases of 35° and more, as the renderer draws them.
    const lines = new THREE.LineSegments(
      new THREE.EdgesGeometry(mesh.geometry, 35),
      new THREE.LineBasicMaterial({ color: 0x222833 }),
    );
    lines.visible = showEdges;
    mesh.add(lines);
  }
  scene.add(part);
  showParts();
  look(currentView);
}

// A result of named parts: model.glb's root node holds a node for each, in
// the order of state.parts. Hidden parts stay hidden across rebuilds.
const hidden = new Set();
let isolated = null;
function partNodes() {
  const root = part && part.children.length === 1 ? part.children[0] : null;
  if (!root || !state.parts || root.children.length !== state.parts.length) return [];
  return root.children;
}

function applyVisibility() {
  const nodes = partNodes();
  state.parts.forEach((p, i) => {
    if (!nodes[i]) return;
    nodes[i].visible = isolated === null ? !hidden.has(p.name) : isolated === p.name;
  });
  for (const item of document.querySelectorAll("#parts li")) {
    const name = item.dataset.part;
    item.querySelector("input").checked = isolated === null ? !hidden.has(name) : isolated === name;
    item.classList.toggle("isolated", isolated === name);
  }
  draw();
}

function showParts() {
  const box = document.getElementById("parts-box");
  const list = document.getElementById("parts");
  const parts = state.parts || [];
  box.hidden = parts.length === 0;
  list.replaceChildren();
  if (isolated !== null && !parts.some((p) => p.name === isolated)) isolated = null;
  const mm = (v) => v.toFixed(1);
  for (const p of parts) {
    const item = document.createElement("li");
    item.dataset.part = p.name;
    const show = document.createElement("input");
    show.type = "checkbox";
    show.title = "show or hide";
    show.addEventListener("change", () => {
      isolated = null;
      if (show.checked) hidden.delete(p.name); else hidden.add(p.name);
      applyVisibility();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = p.color;
    const name = document.createElement("span");
    name.className = "part-name";
    name.textContent = p.name;
    const isolate = document.createElement("button");
    isolate.type = "button";
    isolate.className = "isolate";
    isolate.textContent = "isolate";
    isolate.addEventListener("click", () => {
      isolated = isolated === p.name ? null : p.name;
      applyVisibility();
    });
    const stl = document.createElement("a");
    stl.className = "part-stl";
    stl.href = p.stl;
    stl.textContent = "STL";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${p.size.map(mm).join(" × ")} mm · ${mm(p.volume)} mm³` +
      (p.overlaps.length ? ` · overlaps ${p.overlaps.join(", ")}` : "");
    if (p.overlaps.length) meta.classList.add("error");
    item.append(show, " ", swatch, " ", name, " ", isolate, " ", stl, meta);
    list.appendChild(item);
  }
  applyVisibility();
}

function showFacts() {
  const table = document.getElementById("facts");
  table.replaceChildren();
  const facts = state.facts;
  if (!facts) return;
  const mm = (v) => v.toFixed(2);
  const rows = [
    ["size", facts.size.map(mm).join(" × ") + " mm"],
    ["volume", mm(facts.volume) + " mm³"],
    ["area", mm(facts.area) + " mm²"],
    ["solids", String(facts.solids)],
    ["faces", String(facts.faces)],
    ["result", "attempt " + state.result],
  ];
  for (const [name, value] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = name;
    const cell = tr.insertCell();
    cell.textContent = value;
    cell.className = "num";
    cell.id = "fact-" + name;
  }
  showChecks();
}

// The result's checks: each with its status; a failing one with what was measured.
function showChecks() {
  const list = document.getElementById("checks");
  if (!list || !state.checks || !state.checks.length) return;
  list.replaceChildren();
  for (const c of state.checks) {
    const item = document.createElement("li");
    item.className = c.status;
    const tag = document.createElement("span");
    tag.className = `tag ${c.status}`;
    tag.textContent = c.status;
    const call = document.createElement("code");
    call.textContent = c.call;
    item.append(tag, " ", call);
    if (c.status !== "pass") {
      const why = document.createElement("div");
      why.className = "meta";
      why.textContent = c.message;
      item.appendChild(why);
    }
    list.appendChild(item);
  }
}

let pending = null;
async function tweak(name, value) {
  const status = document.getElementById("status");
  status.className = "";
  status.textContent = "rebuilding…";
  if (pending) pending.abort();
  const mine = (pending = new AbortController());
  let reply;
  try {
    reply = await fetch(`/api/runs/${encodeURIComponent(state.id)}/tweak`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ values: { [name]: value } }),
      signal: mine.signal,
    });
  } catch (err) {
    if (err.name === "AbortError") return;
    throw err;
  }
  const body = await reply.json();
  if (mine !== pending) return;
  if (reply.status === 409 && /superseded/.test(body.error || "")) return;
  if (!reply.ok || body.error) {
    status.className = "error";
    status.textContent = body.error || "the rebuild failed";
    return;
  }
  state = body;
  status.textContent = `attempt ${state.result} built`;
  showState();
  showFacts();
  showParameters();
  await loadModel(state.model);
}

function showParameters() {
  const box = document.getElementById("parameters");
  if (!state.parameters.length) return;
  box.replaceChildren();
  for (const p of state.parameters) {
    const row = document.createElement("div");
    row.className = "param";
    const label = document.createElement("label");
    label.textContent = p.name;
    const number = document.createElement("input");
    number.type = "number";
    number.value = p.value;
    // A count stays whole; a dimension takes decimals however it was written.
    const whole = Boolean(p.count);
    number.step = whole ? "1" : "any";
    number.name = p.name;
    label.appendChild(number);
    const slider = document.createElement("input");
    slider.type = "range";
    const span = Math.max(Math.abs(p.value), whole ? 5 : 1);
    slider.min = p.value - span;
    slider.max = p.value + span;
    slider.step = whole ? 1 : span / 100;
    slider.value = p.value;
    const comment = document.createElement("div");
    comment.className = "comment";
    comment.textContent = p.comment + (whole ? ` (a count: used in ${p.count})` : "");
    let timer = null;
    const changed = (value) => {
      clearTimeout(timer);
      timer = setTimeout(() => tweak(p.name, value), 120);
    };
    slider.addEventListener("input", () => { number.value = slider.value; changed(slider.value); });
    number.addEventListener("change", () => changed(number.value));
    row.append(label, slider, comment);
    box.appendChild(row);
  }
}

for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => look(button.dataset.view));
}
document.getElementById("fit").addEventListener("click", () => look(currentView));
document.getElementById("show-all").addEventListener("click", () => {
  hidden.clear();
  isolated = null;
  applyVisibility();
});
document.getElementById("edges").addEventListener("click", () => {
  showEdges = !showEdges;
  if (part) part.traverse((node) => { if (node.isLineSegments) node.visible = showEdges; });
  draw();
});
function showState() {
  if (state.prompt) document.getElementById("title").textContent = state.prompt.split("\n")[0];
  document.getElementById("report").href = state.report;
  for (const link of document.querySelectorAll(".download")) {
    link.href = state.model ? state.model.replace(/model\.glb$/, link.dataset.file) : "";
  }
  const progress = document.getElementById("progress");
  const stage = state.stage ? ` · ${state.stage}` : "";
  // A run going on here is running, whatever its record says yet.
  const status = state.active ? "running" : state.status;
  progress.textContent = `${status}${stage} · ${state.outcome}` + (state.stop_reason ? ` · ${state.stop_reason}` : "");
  progress.dataset.status = status;
  const history = document.getElementById("history");
  history.replaceChildren();
  for (const a of state.history) {
    const item = document.createElement("li");
    const parts = [a.stage];
    if (a.changes.length) parts.push(a.changes.join(", "));
    parts.push(a.error ? `failed: ${a.error}` : "built");
    if (a.checks) parts.push(a.checks);
    if (a.verdict) parts.push(`verdict ${a.verdict}` + (a.overruled ? " (overruled by the checks)" : ""));
    item.textContent = parts.join(" · ");
    for (const d of a.diagnosis) {
      const line = document.createElement("div");
      line.className = "diagnosis";
      line.textContent = d;
      item.appendChild(line);
    }
    if (a.refused_sheet) {
      const link = document.createElement("a");
      link.className = "refused-sheet";
      link.href = a.refused_sheet;
      link.target = "_blank";
      link.textContent = "views of the refused shape (where it is open in red)";
      item.appendChild(link);
    }
    if (a.captions.length) {
      const captions = document.createElement("div");
      captions.className = "meta";
      captions.textContent = a.captions.join("; ");
      item.appendChild(captions);
    }
    history.appendChild(item);
  }
  // The reply the LLM is writing now, as it streams.
  const writing = document.getElementById("writing");
  writing.hidden = !state.writing;
  if (state.writing) {
    const rate = state.writing.tokens_per_second;
    document.getElementById("writing-count").textContent =
      `the LLM is writing · ${state.writing.tokens} tokens` + (rate ? ` · ${rate.toFixed(1)} tokens a second` : "");
    const text = document.getElementById("writing-text");
    text.textContent = state.writing.text;
    text.scrollTop = text.scrollHeight;
  }
  const sheet = document.getElementById("sheet");
  if (state.sheet) { sheet.src = state.sheet; sheet.style.display = "block"; }
  // The report is rewritten with run.json: show it again when attempts change.
  const record = document.getElementById("record");
  const key = `${state.report}#${state.history.length}-${state.status}`;
  if (record.dataset.key !== key) {
    record.dataset.key = key;
    record.src = `${state.report}?v=${state.history.length}-${state.status}`;
  }
}

/// Follows the run while it goes on: its state arrives as server-sent events.
function follow() {
  const source = new EventSource(`/api/runs/${encodeURIComponent(state.id)}/events`);
  let shownModel = state.model;
  source.addEventListener("state", async (event) => {
    state = JSON.parse(event.data);
    showState();
    showFacts();
    if (state.model !== shownModel) {
      shownModel = state.model;
      showParameters();
      if (state.model) await loadModel(state.model);
    }
    if (!state.active && state.status !== "running") source.close();
  });
}

const changeBox = document.getElementById("change-box");
if (changeBox) {
  changeBox.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = document.getElementById("from-attempt").value;
    const reply = await fetch(`/api/runs/${encodeURIComponent(state.id)}/refine`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ change: document.getElementById("change").value, from_attempt: from ? Number(from) : null }),
    });
    const body = await reply.json();
    const status = document.getElementById("status");
    if (!reply.ok) { status.className = "error"; status.textContent = body.error; return; }
    follow();
  });
  document.getElementById("stop").addEventListener("click", () =>
    fetch(`/api/runs/${encodeURIComponent(state.id)}/stop`, { method: "POST" }));
}

resize();
showState();
showFacts();
showParameters();
follow();
if (state.model) await loadModel(state.model);
