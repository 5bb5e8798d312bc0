// Reading a model's answer: bounding boxes (Gemini's [ymin, xmin, ymax, xmax], 0-1000) and MM:SS timestamps.
// Pure functions, no DOM: the playground and the unit tests (node) share them.

const BOX_KEYS = ["box_2d", "box2d", "bbox", "box", "bounding_box"];

// Every box in the text, as {ymin, xmin, ymax, xmax, label}, in order of appearance.
export function findBoxes(text) {
  const boxes = [];
  for (const value of jsonValues(text)) collectBoxes(value, "", boxes);
  return boxes;
}

function collectBoxes(value, label, out) {
  if (isBareBox(value)) {
    const [ymin, xmin, ymax, xmax] = value.map(Number);
    out.push({ ymin, xmin, ymax, xmax, label: label || `box ${out.length + 1}` });
  } else if (Array.isArray(value)) {
    for (const item of value) collectBoxes(item, label, out);
  } else if (value && typeof value === "object") {
    const key = BOX_KEYS.find((k) => isBareBox(value[k]));
    const name = String(value.label ?? value.name ?? value.object ?? value.text ?? label ?? "");
    if (key) collectBoxes(value[key], name, out);
    else for (const v of Object.values(value)) if (typeof v === "object") collectBoxes(v, name, out);
  }
}

function isBareBox(v) {
  return Array.isArray(v) && v.length === 4
    && v.every((n) => typeof n === "number" && Number.isFinite(n) && n >= 0 && n <= 1000)
    && v[0] <= v[2] && v[1] <= v[3];
}

// Each JSON value embedded in free text: try every '[' or '{' and keep the balanced ones that parse.
export function* jsonValues(text) {
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "[" || ch === "{") {
      const end = balancedEnd(text, i);
      if (end > i) {
        try {
          yield JSON.parse(text.slice(i, end + 1));
          i = end + 1;
          continue;
        } catch { /* not JSON: look inside it */ }
      }
    }
    i += 1;
  }
}

function balancedEnd(text, start) {
  const stack = [];
  let inString = false;
  for (let i = start; i < text.length; i += 1) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i += 1;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "[" || ch === "{") stack.push(ch === "[" ? "]" : "}");
    else if (ch === "]" || ch === "}") {
      if (stack.pop() !== ch) return -1;
      if (!stack.length) return i;
    }
  }
  return -1;
}

// Box in pixels of an image of width x height (the seed's conversion: /1000, times the dimension).
export function toPixels(box, width, height) {
  return {
    x0: Math.round((box.xmin / 1000) * width), y0: Math.round((box.ymin / 1000) * height),
    x1: Math.round((box.xmax / 1000) * width), y1: Math.round((box.ymax / 1000) * height),
  };
}

const TIMESTAMP = /(?<![\d:.])(?:(\d{1,2}):)?([0-5]?\d):([0-5]\d)(?![\d:])/g;

// Split text into [{text} | {text, seconds}] segments, timestamps (MM:SS or H:MM:SS) marked with seconds.
export function splitTimestamps(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(TIMESTAMP)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    const seconds = Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    out.push({ text: m[0], seconds });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

// Server-sent events: feed decoded text, get back the JSON payloads of complete `data:` events.
export class SseParser {
  constructor() { this.buffer = ""; }

  push(chunk) {
    this.buffer += chunk;
    const events = [];
    const parts = this.buffer.split(/\r\n\r\n|\n\n|\r\r/);
    this.buffer = parts.pop();
    for (const part of parts) {
      const data = part.split(/\r\n|\n|\r/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) events.push(JSON.parse(data));
    }
    return events;
  }
}

// The text of a GenerateContentResponse (first candidate, thoughts left out), as the SDKs' `.text`.
export function responseText(response) {
  const parts = response?.candidates?.[0]?.content?.parts ?? [];
  return parts.filter((p) => typeof p.text === "string" && !p.thought).map((p) => p.text).join("");
}
