// GAN Zoo web page: lists the served models and builds, per model, the controls its signatures
// call for. Talks only to TF Serving's REST API (metadata and :predict), so it works against the
// zoo's server and against real TF Serving behind a proxy (?api=BASE_URL&models=a,b).
"use strict";

const params = new URLSearchParams(location.search);
const API = (params.get("api") || "").replace(/\/$/, "");
const EXAMPLE_CAPTIONS = [
  "a small red circle in the top left",
  "a large blue square in the middle",
  "a green triangle at the bottom right",
];

// --- REST API --------------------------------------------------------------------------------

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(API + path, options);
  } catch (error) {
    throw new Error(`cannot reach ${API || location.origin}${path}: ${error.message}`);
  }
  const text = await response.text();
  let json;
  try { json = JSON.parse(text); } catch { json = null; }
  if (!response.ok || json === null) {
    throw new Error(json && json.error ? json.error : `HTTP ${response.status}: ${text.slice(0, 300)}`);
  }
  return json;
}

async function predict(model, signatureName, inputs) {
  const signature = model.signatures[signatureName];
  const reply = await api(`/v1/models/${encodeURIComponent(model.name)}:predict`,
                          {signature_name: signatureName, inputs});
  // TF Serving's columnar reply: "outputs" is the bare value when the signature has one output.
  const names = Object.keys(signature.outputs);
  return names.length === 1 ? {[names[0]]: reply.outputs} : reply.outputs;
}

async function servedModels() {
  if (params.get("models")) {
    return params.get("models").split(",").filter(Boolean).map(name => ({name, card: null}));
  }
  return (await api("/web/models.json")).models;
}

// --- Small DOM helpers -----------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function numberField(label, value, attributes = {}) {
  const input = el("input", {type: "number", value: String(value), ...attributes});
  return [el("label", {}, label, input), input];
}

function pngImage(b64, alt) {
  return el("img", {src: `data:image/png;base64,${b64}`, alt});
}

function readFileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

// Runs `work` on click with the button disabled; shows the API's error text under the panel.
function action(button, errorBox, work) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    errorBox.replaceChildren();
    errorBox.hidden = true;
    try {
      await work();
    } catch (error) {
      errorBox.hidden = false;
      errorBox.replaceChildren(error.message);
    } finally {
      button.disabled = false;
    }
  });
}

function panel(title, note) {
  const errorBox = el("div", {class: "error", hidden: ""});
  const result = el("div", {class: "result"});
  const controls = el("div", {class: "controls"});
  const node = el("section", {class: "panel"}, el("h3", {}, title),
                  note ? el("p", {class: "muted"}, note) : "", controls, errorBox, result);
  return {node, controls, errorBox, result};
}

// --- Signature inputs ------------------------------------------------------------------------

function inputsOf(signature, dtype) {
  return Object.entries(signature.inputs).filter(([, spec]) => spec.dtype === dtype).map(([k]) => k);
}

function outputsOf(signature, dtype) {
  return Object.entries(signature.outputs).filter(([, spec]) => spec.dtype === dtype).map(([k]) => k);
}

// A scalar input takes a bare value, a batched one a list (TF Serving refuses [x] for shape []).
// TF Serving's JSON leaves "dim" out when it is empty.
function isScalar(spec) {
  const shape = spec.tensor_shape || {};
  return !shape.unknown_rank && !(shape.dim || []).length;
}

// --- Panels, one per kind of signature --------------------------------------------------------

function samplePanel(model, name) {
  const p = panel("Sample from seeds", "Each seed gives the same image in every server.");
  const [seedLabel, seed] = numberField("first seed", 0, {min: 0, step: 1});
  const [countLabel, count] = numberField("images", 8, {min: 1, max: 64, step: 1});
  const button = el("button", {}, "Generate");
  p.controls.append(seedLabel, countLabel, button);
  p.result.classList.add("grid");
  const [seedInput] = inputsOf(model.signatures[name], "DT_INT64");
  const [pngOutput] = outputsOf(model.signatures[name], "DT_STRING");
  action(button, p.errorBox, async () => {
    const first = Number(seed.value), n = Number(count.value);
    const seeds = Array.from({length: n}, (_, i) => first + i);
    const outputs = await predict(model, name, {[seedInput]: seeds});
    p.result.replaceChildren(...outputs[pngOutput].map((png, i) => pngImage(png.b64, `seed ${seeds[i]}`)));
  });
  return p.node;
}

function interpolatePanel(model, name) {
  const p = panel("Walk through the latent space", "Images between two seeds; drag the slider.");
  const signature = model.signatures[name];
  const fields = {};
  const defaults = {seed_a: 0, seed_b: 1, steps: 8};
  for (const input of Object.keys(signature.inputs)) {
    const [label, field] = numberField(input, defaults[input] ?? 0, {step: 1});
    fields[input] = field;
    p.controls.append(label);
  }
  const button = el("button", {}, "Interpolate");
  p.controls.append(button);
  const [pngOutput] = outputsOf(signature, "DT_STRING");
  action(button, p.errorBox, async () => {
    const inputs = Object.fromEntries(Object.entries(fields).map(([k, f]) => [
      k, isScalar(signature.inputs[k]) ? Number(f.value) : [Number(f.value)]]));
    const outputs = await predict(model, name, inputs);
    const frames = outputs[pngOutput].flat(Infinity).map((png, i) => pngImage(png.b64, `step ${i}`));
    const frame = el("div", {class: "frame"}, pngImage(frames[0].src.split(",")[1], "frame"));
    const slider = el("input", {type: "range", min: "0", max: String(frames.length - 1), value: "0",
                                "aria-label": "interpolation step"});
    slider.addEventListener("input", () => { frame.firstChild.src = frames[Number(slider.value)].src; });
    p.result.replaceChildren(el("div", {}, el("div", {class: "strip"}, frames), frame, slider));
  });
  return p.node;
}

function imagePanel(model, name) {
  const upscale = name.startsWith("upscale");
  const p = panel(upscale ? "Upscale a photo (4x)" : `Translate a photo (${name.replace(/_bytes$/, "")})`,
                  "Upload a PNG or JPEG of any size.");
  const file = el("input", {type: "file", accept: "image/png,image/jpeg", "aria-label": "photo"});
  const button = el("button", {}, upscale ? "Upscale" : "Translate");
  p.controls.append(file, button);
  const signature = model.signatures[name];
  const [bytesInput] = inputsOf(signature, "DT_STRING");
  const [pngOutput] = outputsOf(signature, "DT_STRING");
  action(button, p.errorBox, async () => {
    if (!file.files.length) throw new Error("Choose a photo first.");
    const b64 = await readFileBase64(file.files[0]);
    const outputs = await predict(model, name, {[bytesInput]: [{b64}]});
    const after = outputs[pngOutput][0].b64;
    p.result.replaceChildren(
      el("figure", {}, pngImage(b64, "input"), el("figcaption", {}, "input")),
      el("figure", {}, pngImage(after, "result"), el("figcaption", {}, "result")),
      compareView(b64, after));
  });
  return p.node;
}

// A before/after view: the input drawn over the result at the result's size (the browser scales
// a smaller input up), shown left of the slider; the result right of it.
function compareView(before, after) {
  const bottom = pngImage(after, "after");
  const top = pngImage(before, "before");
  top.className = "before";
  const slider = el("input", {type: "range", min: "0", max: "100", value: "50",
                              "aria-label": "before/after"});
  slider.addEventListener("input", () => { top.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; });
  return el("figure", {}, el("div", {class: "compare"}, bottom, top), slider,
            el("figcaption", {}, "before / after"));
}

function inpaintPanel(model, name) {
  const p = panel("Inpaint", "Draw over the image to mark what is missing (white), then fill it in.");
  const signature = model.signatures[name];
  const [imageInput, maskInput] = ["image", "mask"].map(
    word => inputsOf(signature, "DT_STRING").find(k => k.includes(word)));
  const [pngOutput] = outputsOf(signature, "DT_STRING");
  const canvas = el("canvas", {class: "mask", width: "28", height: "28"});
  const mask = el("canvas", {width: "28", height: "28"});
  let picture = null;
  const file = el("input", {type: "file", accept: "image/png", "aria-label": "image to inpaint"});
  const sampleButton = el("button", {class: "secondary"}, "Use a sample");
  const [seedLabel, seed] = numberField("seed", 0, {min: 0, step: 1});
  const button = el("button", {}, "Inpaint");
  p.controls.append(seedLabel, sampleButton, file, button);
  p.result.before(canvas);

  function load(b64) {
    const image = new Image();
    image.onload = () => {
      for (const c of [canvas, mask]) { c.width = image.width; c.height = image.height; }
      canvas.getContext("2d").drawImage(image, 0, 0);
      const m = mask.getContext("2d");
      m.fillStyle = "#000"; m.fillRect(0, 0, mask.width, mask.height);
      picture = {b64, image};
    };
    image.src = `data:image/png;base64,${b64}`;
  }
  function paint(event) {
    if (!picture || !(event.buttons & 1)) return;
    const box = canvas.getBoundingClientRect();
    const x = Math.floor((event.clientX - box.left) / box.width * canvas.width);
    const y = Math.floor((event.clientY - box.top) / box.height * canvas.height);
    const r = Math.max(1, Math.round(canvas.width / 14));
    canvas.getContext("2d").fillStyle = "#fff";
    canvas.getContext("2d").fillRect(x - r, y - r, 2 * r, 2 * r);
    mask.getContext("2d").fillStyle = "#fff";
    mask.getContext("2d").fillRect(x - r, y - r, 2 * r, 2 * r);
  }
  canvas.addEventListener("pointerdown", paint);
  canvas.addEventListener("pointermove", paint);
  file.addEventListener("change", async () => { if (file.files.length) load(await readFileBase64(file.files[0])); });
  const sampler = model.signatures.generate_from_seed ? "generate_from_seed" : null;
  sampleButton.hidden = !sampler;
  action(sampleButton, p.errorBox, async () => {
    const outputs = await predict(model, sampler, {seed: [Number(seed.value)]});
    load(outputs.images_png_bytes[0].b64);
  });
  action(button, p.errorBox, async () => {
    if (!picture) throw new Error("Load an image first (a sample or a PNG).");
    const maskB64 = mask.toDataURL("image/png").split(",", 2)[1];
    const outputs = await predict(model, name, {[imageInput]: [{b64: picture.b64}], [maskInput]: [{b64: maskB64}]});
    p.result.replaceChildren(el("figure", {}, pngImage(outputs[pngOutput][0].b64, "inpainted"),
                                el("figcaption", {}, "inpainted")));
    p.result.classList.add("grid");
  });
  return p.node;
}

function textPanel(model, name) {
  const p = panel("Generate from a caption", "Type a sentence; a seed reproduces the images.");
  const signature = model.signatures[name];
  const [textInput] = inputsOf(signature, "DT_STRING");
  const [seedInput] = inputsOf(signature, "DT_INT64");
  const [pngOutput] = outputsOf(signature, "DT_STRING");
  const caption = el("textarea", {"aria-label": "caption"});
  caption.value = EXAMPLE_CAPTIONS[0];
  const [seedLabel, seed] = numberField("seed", 0, {min: 0, step: 1});
  const [countLabel, count] = numberField("images", 4, {min: 1, max: 16, step: 1});
  const button = el("button", {}, "Generate");
  const examples = el("div", {class: "examples"}, EXAMPLE_CAPTIONS.map(text =>
    el("button", {class: "secondary", onclick: () => { caption.value = text; }}, text)));
  p.controls.append(el("label", {}, "caption", caption), seedInput ? seedLabel : "", countLabel, button);
  p.controls.after(examples);
  p.result.classList.add("grid");
  action(button, p.errorBox, async () => {
    const n = Number(count.value), first = Number(seed.value);
    const inputs = {[textInput]: Array(n).fill(caption.value)};
    if (seedInput) inputs[seedInput] = Array.from({length: n}, (_, i) => first + i);
    const outputs = await predict(model, name, inputs);
    p.result.replaceChildren(...outputs[pngOutput].map((png, i) => pngImage(png.b64, `${caption.value} (${i})`)));
  });
  return p.node;
}

// Which panel a signature gets, in the order they are shown; the first match wins.
const PANELS = [
  [name => name === "generate_from_text", textPanel, "text-to-image"],
  [name => name === "generate_from_seed", samplePanel, "unconditional"],
  [name => name === "interpolate", interpolatePanel, null],
  [name => name === "inpaint_bytes", inpaintPanel, null],
  [name => /^upscale_bytes$/.test(name), imagePanel, "super-resolution"],
  [name => /_bytes$/.test(name) && !name.startsWith("inpaint"), imagePanel, "image-to-image"],
];

// --- Model cards (a small Markdown subset: headings, lists, tables, code fences) ---------------

function renderMarkdown(text) {
  const root = el("div");
  let list = null, table = null, code = null;
  const inline = line => {
    const span = el("span");
    line.split(/(`[^`]*`)/).forEach(part => span.append(
      part.startsWith("`") && part.endsWith("`") && part.length > 1 ? el("code", {}, part.slice(1, -1)) : part));
    return span;
  };
  for (const line of text.split("\n")) {
    if (code) { if (line.startsWith("```")) { root.append(code); code = null; } else code.append(line + "\n"); continue; }
    if (line.startsWith("```")) { code = el("pre"); continue; }
    if (!line.startsWith("- ")) list = null;
    if (!line.startsWith("|")) table = null;
    if (/^#{1,6} /.test(line)) root.append(el("h4", {}, line.replace(/^#+ /, "")));
    else if (line.startsWith("- ")) { if (!list) root.append(list = el("ul")); list.append(el("li", {}, inline(line.slice(2)))); }
    else if (line.startsWith("|")) {
      if (/^\|[-:| ]+\|$/.test(line)) continue;
      if (!table) root.append(table = el("table"));
      table.append(el("tr", {}, line.slice(1, -1).split("|").map(cell => el("td", {}, inline(cell.trim())))));
    } else if (line.startsWith("![")) continue;  // images live beside the card, not behind the API
    else if (line.trim()) root.append(el("p", {}, inline(line)));
  }
  return root;
}

function cardSummary(card) {
  // "`dcgan`: Radford et al. 2015, ..." is the card's first paragraph.
  const line = (card || "").split("\n").find(l => l.startsWith("`"));
  return line ? line.replace(/`/g, "") : "";
}

// --- The page -------------------------------------------------------------------------------

async function modelSection(entry) {
  const section = el("article", {class: "model", "data-model": entry.name}, el("h2", {}, entry.name));
  try {
    const metadata = await api(`/v1/models/${encodeURIComponent(entry.name)}/metadata`);
    const signatures = metadata.metadata.signature_def.signature_def;
    const model = {name: entry.name, signatures};
    const names = Object.keys(signatures).sort();
    const kinds = new Set();
    const panels = [];
    for (const [matches, make, kind] of PANELS) {
      for (const name of names.filter(matches)) {
        if (panels.some(p => p.name === name)) continue;
        panels.push({name, node: make(model, name)});
        if (kind) kinds.add(kind);
      }
    }
    section.append(el("div", {class: "kind"}, [...kinds].join(", ") || "no interactive signature",
                      cardSummary(entry.card) ? ` · ${cardSummary(entry.card)}` : "",
                      ` · version ${metadata.model_spec.version}`));
    if (entry.card) {
      section.append(el("details", {class: "card"}, el("summary", {}, "Model card"), renderMarkdown(entry.card)));
    }
    section.append(...panels.map(p => p.node));
  } catch (error) {
    section.append(el("div", {class: "error"}, error.message));
  }
  return section;
}

async function main() {
  document.getElementById("api-line").textContent = `API: ${API || location.origin}`;
  const status = document.getElementById("status");
  try {
    const models = await servedModels();
    const sections = await Promise.all(models.map(modelSection));
    document.getElementById("models").replaceChildren(...sections);
    status.textContent = models.length ? `${models.length} model(s) served.` : "No model is served.";
  } catch (error) {
    status.textContent = "";
    status.append(el("div", {class: "error"}, error.message));
  }
  document.body.dataset.ready = "true";
}

main();
