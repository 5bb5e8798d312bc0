// The playground: key, model, attachments (Files API), prompt, streamed answer with boxes and timestamps.
import { Api } from "./api.js";
import { findBoxes, responseText, splitTimestamps, toPixels } from "./parse.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "pollux.apiKey";
const MODEL_STORE = "pollux.model";
const POLL_MS = 1000;

const state = { api: null, attachments: [], nextId: 1, streaming: null, countTimer: null, countSeq: 0 };

function apiBase() {
  const param = new URLSearchParams(location.search).get("api");
  const meta = document.querySelector('meta[name="pollux-api-base"]')?.content?.trim();
  if (param || meta) return new URL(param || meta, location.href).href;
  const dir = new URL("./", location.href);
  dir.pathname = dir.pathname.replace(/static\/$/, ""); // assets may live under /static/
  return dir.href;
}

function setStatus(message, kind = "info") {
  const el = $("status");
  el.textContent = message;
  el.dataset.kind = kind;
}

function showError(err) {
  if (err?.name === "AbortError") return;
  console.error(err);
  setStatus(err?.message ?? String(err), "error");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function humanSize(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  for (n = Number(n || 0); n >= 1024 && i < units.length - 1; i += 1) n /= 1024;
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- connection --------------------------------------------------------------------------------

async function connect() {
  const key = $("api-key").value.trim();
  if (!key) {
    state.api = null;
    setStatus("Enter an API key to start.");
    return;
  }
  localStorage.setItem(KEY_STORE, key);
  state.api = new Api(apiBase(), key);
  try {
    await loadModels();
    await refreshFiles();
    setStatus("Connected.", "ok");
    scheduleCount();
  } catch (err) {
    showError(err);
  }
}

async function loadModels() {
  const select = $("model");
  const models = await state.api.models();
  const usable = models.filter((m) => !m.supportedGenerationMethods
    || m.supportedGenerationMethods.includes("generateContent"));
  select.replaceChildren(...usable.map((m) => {
    const opt = document.createElement("option");
    opt.value = m.name;
    const id = m.name.replace(/^models\//, "");
    const display = m.displayName ?? "";
    opt.textContent = !display || display === id ? id : display.startsWith(id) ? display : `${id} (${display})`;
    return opt;
  }));
  const wanted = localStorage.getItem(MODEL_STORE);
  const names = usable.map((m) => m.name);
  select.value = names.includes(wanted) ? wanted : names.includes("models/gemini-2.0-flash") ? "models/gemini-2.0-flash" : names[0];
  select.disabled = !names.length;
}

// ---- attachments -------------------------------------------------------------------------------

function addLocalFiles(files) {
  for (const blob of files) {
    const a = {
      id: state.nextId++, name: blob.name, mime: blob.type, blob, previewUrl: URL.createObjectURL(blob),
      state: "UPLOADING", progress: 0, file: null, controller: new AbortController(),
    };
    state.attachments.push(a);
    renderAttachment(a);
    uploadAttachment(a);
  }
  scheduleCount();
}

function addRemoteFile(file) {
  const a = { id: state.nextId++, name: file.displayName || file.name, mime: file.mimeType, file, state: file.state,
    progress: 1, controller: new AbortController() };
  state.attachments.push(a);
  renderAttachment(a);
  waitActive(a);
}

async function uploadAttachment(a) {
  if (!state.api) {
    a.state = "ERROR";
    a.error = "enter an API key first";
    renderAttachment(a);
    return;
  }
  try {
    a.file = await state.api.upload(a.blob, a.name, (done, total) => {
      a.progress = total ? done / total : 1;
      renderAttachment(a);
    }, a.controller.signal);
    a.state = a.file.state;
    renderAttachment(a);
    await waitActive(a);
    refreshFiles().catch(showError);
  } catch (err) {
    if (err?.name === "AbortError") return;
    a.state = "ERROR";
    a.error = err.message;
    renderAttachment(a);
  }
}

// Poll files.get while the server prepares the media (videos take a while).
async function waitActive(a) {
  while (a.file.state === "PROCESSING" && !a.controller.signal.aborted) {
    await sleep(POLL_MS);
    a.file = await state.api.getFile(a.file.name);
    a.state = a.file.state;
    renderAttachment(a);
  }
  if (a.state === "FAILED") a.error = a.file.error?.message ?? "processing failed";
  renderAttachment(a);
  scheduleCount();
}

function removeAttachment(a) {
  a.controller.abort();
  if (a.previewUrl) URL.revokeObjectURL(a.previewUrl);
  state.attachments = state.attachments.filter((x) => x !== a);
  document.querySelector(`#attachments [data-id="${a.id}"]`)?.remove();
  scheduleCount();
}

function renderAttachment(a) {
  let li = document.querySelector(`#attachments [data-id="${a.id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = a.id;
    li.innerHTML = `<span class="thumb"></span><span class="name"></span><progress max="1"></progress>
      <span class="state"></span><button type="button" class="remove" title="Remove">×</button>`;
    li.querySelector(".remove").addEventListener("click", () => removeAttachment(a));
    const thumb = li.querySelector(".thumb");
    if (a.previewUrl && a.mime.startsWith("image/")) thumb.append(Object.assign(new Image(), { src: a.previewUrl, alt: "" }));
    else thumb.textContent = a.mime.split("/")[0] || "file";
    $("attachments").append(li);
  }
  li.dataset.state = a.state;
  li.querySelector(".name").textContent = a.file ? `${a.name} · ${a.file.name}` : a.name;
  li.querySelector("progress").value = a.progress;
  li.querySelector("progress").hidden = a.state !== "UPLOADING";
  li.querySelector(".state").textContent = a.state === "UPLOADING" ? `${Math.round(a.progress * 100)}%`
    : a.error ? `${a.state}: ${a.error}` : a.state;
}

// ---- token count -------------------------------------------------------------------------------

function promptContents() {
  const parts = state.attachments.filter((a) => a.state === "ACTIVE")
    .map((a) => ({ fileData: { fileUri: a.file.uri, mimeType: a.file.mimeType } }));
  const text = $("prompt").value;
  if (text.trim()) parts.push({ text });
  return parts.length ? [{ role: "user", parts }] : [];
}

function scheduleCount() {
  clearTimeout(state.countTimer);
  state.countTimer = setTimeout(countTokens, 400);
}

async function countTokens() {
  const el = $("token-count");
  const contents = promptContents();
  const model = $("model").value;
  if (!state.api || !contents.length || $("model").disabled) {
    el.textContent = "";
    return;
  }
  const seq = ++state.countSeq;
  try {
    const result = await state.api.countTokens(model, contents);
    if (seq !== state.countSeq) return; // a newer count is on its way
    const pending = state.attachments.some((a) => a.state === "UPLOADING" || a.state === "PROCESSING");
    el.textContent = `${result.totalTokens ?? 0} tokens${pending ? " (uploads pending)" : ""}`;
    el.dataset.tokens = result.totalTokens ?? 0;
  } catch (err) {
    if (seq === state.countSeq) el.textContent = `tokens: ${err.message}`;
  }
}

// ---- ask ---------------------------------------------------------------------------------------

function stageMedia() {
  const pick = (kind) => state.attachments.find((a) => a.previewUrl && a.mime.startsWith(`${kind}/`));
  const image = pick("image");
  const video = pick("video");
  const audio = pick("audio");
  $("image-stage").hidden = !image;
  if (image) $("stage-image").src = image.previewUrl;
  for (const [el, a] of [[$("stage-video"), video], [$("stage-audio"), audio]]) {
    el.hidden = !a;
    if (a && el.dataset.src !== a.previewUrl) {
      el.src = a.previewUrl;
      el.dataset.src = a.previewUrl;
    }
  }
  $("boxes").replaceChildren();
}

async function send() {
  if (!state.api) return setStatus("Enter an API key first.", "error");
  if (state.attachments.some((a) => a.state !== "ACTIVE")) {
    return setStatus("Wait until every attachment is ACTIVE (or remove it).", "error");
  }
  const contents = promptContents();
  if (!contents.length) return setStatus("Write a prompt.", "error");
  const model = $("model").value;
  localStorage.setItem(MODEL_STORE, model);
  stageMedia();
  const answer = $("answer");
  answer.replaceChildren();
  answer.dataset.chunks = "0";
  answer.dataset.state = "streaming";
  $("usage").textContent = "";
  const controller = new AbortController();
  state.streaming = controller;
  $("send").disabled = true;
  $("stop").hidden = false;
  setStatus("Answering…");
  let text = "";
  try {
    await state.api.stream(model, { contents }, (chunk) => {
      text += responseText(chunk);
      answer.dataset.chunks = String(Number(answer.dataset.chunks) + 1);
      renderAnswer(text);
      const usage = chunk.usageMetadata;
      if (usage) $("usage").textContent = `prompt ${usage.promptTokenCount ?? 0} tokens · answer ${usage.candidatesTokenCount ?? 0} tokens`;
      const reason = chunk.candidates?.[0]?.finishReason;
      if (reason && reason !== "STOP") $("usage").textContent += ` · stopped: ${reason}`;
      if (chunk.promptFeedback?.blockReason) setStatus(`Prompt blocked: ${chunk.promptFeedback.blockReason}`, "error");
    }, controller.signal);
    answer.dataset.state = "done";
    setStatus("Done.", "ok");
  } catch (err) {
    answer.dataset.state = err?.name === "AbortError" ? "stopped" : "error";
    showError(err);
  } finally {
    state.streaming = null;
    $("send").disabled = false;
    $("stop").hidden = true;
    drawBoxes(text);
  }
}

function renderAnswer(text) {
  const nodes = splitTimestamps(text).map((seg) => {
    if (seg.seconds === undefined) return document.createTextNode(seg.text);
    const a = document.createElement("a");
    a.href = `#t=${seg.seconds}`;
    a.className = "ts";
    a.dataset.seconds = seg.seconds;
    a.textContent = seg.text;
    a.title = `seek to ${seg.seconds}s`;
    return a;
  });
  $("answer").replaceChildren(...nodes);
  if (text.length < 50000) drawBoxes(text); // boxes show up as soon as their JSON is complete
}

function drawBoxes(text) {
  const layer = $("boxes");
  if ($("image-stage").hidden) return;
  const img = $("stage-image");
  layer.replaceChildren(...findBoxes(text).map((box) => {
    const div = document.createElement("div");
    div.className = "box";
    div.style.top = `${box.ymin / 10}%`;
    div.style.left = `${box.xmin / 10}%`;
    div.style.height = `${(box.ymax - box.ymin) / 10}%`;
    div.style.width = `${(box.xmax - box.xmin) / 10}%`;
    const px = toPixels(box, img.naturalWidth, img.naturalHeight);
    div.title = `${box.label}: x ${px.x0}–${px.x1}, y ${px.y0}–${px.y1} px`;
    const label = document.createElement("span");
    label.className = "box-label";
    label.textContent = box.label;
    div.append(label);
    return div;
  }));
}

function seek(seconds) {
  const media = [$("stage-video"), $("stage-audio")].find((m) => !m.hidden);
  if (!media) return setStatus("No video or audio attached to seek.", "error");
  const apply = () => { media.currentTime = Math.min(seconds, media.duration || seconds); };
  if (media.readyState >= 1) apply();
  else media.addEventListener("loadedmetadata", apply, { once: true });
  media.scrollIntoView({ block: "nearest" });
}

// ---- files -------------------------------------------------------------------------------------

async function refreshFiles() {
  if (!state.api) return;
  const files = await state.api.files();
  $("files").tBodies[0].replaceChildren(...files.map(fileRow));
}

function fileRow(file) {
  const tr = document.createElement("tr");
  tr.dataset.name = file.name;
  for (const value of [`${file.displayName ?? ""}\n${file.name}`, file.mimeType, humanSize(file.sizeBytes), file.state]) {
    const td = document.createElement("td");
    td.textContent = value ?? "";
    tr.append(td);
  }
  const actions = document.createElement("td");
  const attach = Object.assign(document.createElement("button"), { type: "button", textContent: "Attach", className: "attach" });
  attach.addEventListener("click", () => addRemoteFile(file));
  const del = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete", className: "delete" });
  del.addEventListener("click", async () => {
    try {
      await state.api.deleteFile(file.name);
      for (const a of state.attachments.filter((x) => x.file?.name === file.name)) removeAttachment(a);
      await refreshFiles();
      setStatus(`Deleted ${file.name}.`, "ok");
    } catch (err) { showError(err); }
  });
  actions.append(attach, del);
  tr.append(actions);
  return tr;
}

// ---- wiring ------------------------------------------------------------------------------------

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORE) ?? "";
  key.addEventListener("change", connect);
  $("model").addEventListener("change", () => { localStorage.setItem(MODEL_STORE, $("model").value); scheduleCount(); });
  $("file-input").addEventListener("change", (e) => { addLocalFiles([...e.target.files]); e.target.value = ""; });
  $("prompt").addEventListener("input", scheduleCount);
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(); });
  $("send").addEventListener("click", send);
  $("stop").addEventListener("click", () => state.streaming?.abort());
  $("refresh-files").addEventListener("click", () => refreshFiles().catch(showError));
  $("answer").addEventListener("click", (e) => {
    const link = e.target.closest("a.ts");
    if (!link) return;
    e.preventDefault();
    seek(Number(link.dataset.seconds));
  });
  $("stage-image").addEventListener("load", () => drawBoxes($("answer").textContent));
  connect();
}

init();
