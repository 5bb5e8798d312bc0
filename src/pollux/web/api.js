// The Gemini REST calls the playground makes, over fetch and XMLHttpRequest (upload progress).
import { SseParser } from "./parse.js";

const VERSION = "v1beta";
const CHUNK = 8 * 1024 * 1024; // same chunk size as the SDKs

export class ApiError extends Error {
  constructor(status, body) {
    const e = body?.error ?? {};
    super(`${e.code ?? status} ${e.status ?? "ERROR"}: ${e.message ?? "request failed"}`);
    this.status = status;
    this.body = body;
  }
}

export class Api {
  constructor(base, key) {
    this.base = base.replace(/\/+$/, "");
    this.key = key;
  }

  url(path) { return `${this.base}/${path.replace(/^\/+/, "")}`; }

  async json(method, path, body) {
    const headers = { "x-goog-api-key": this.key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(this.url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const data = text ? safeJson(text) : {};
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  async listAll(path, key, pageSize) {
    const items = [];
    let token = "";
    do {
      const page = await this.json("GET", `${path}?pageSize=${pageSize}${token ? `&pageToken=${encodeURIComponent(token)}` : ""}`);
      items.push(...(page[key] ?? []));
      token = page.nextPageToken ?? "";
    } while (token);
    return items;
  }

  models() { return this.listAll(`${VERSION}/models`, "models", 1000); }
  files() { return this.listAll(`${VERSION}/files`, "files", 100); }
  getFile(name) { return this.json("GET", `${VERSION}/${name}`); }
  deleteFile(name) { return this.json("DELETE", `${VERSION}/${name}`); }
  countTokens(model, contents) { return this.json("POST", `${VERSION}/${model}:countTokens`, { contents }); }

  // X-Goog resumable upload: start, then 8 MiB chunks via XHR (for progress); resolves to the File.
  async upload(blob, displayName, onProgress, signal) {
    const mimeType = blob.type || "application/octet-stream";
    const start = await fetch(this.url(`upload/${VERSION}/files`), {
      method: "POST",
      signal,
      headers: {
        "x-goog-api-key": this.key,
        "Content-Type": "application/json",
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": String(blob.size),
        "X-Goog-Upload-Header-Content-Type": mimeType,
      },
      body: JSON.stringify({ file: { displayName, mimeType } }),
    });
    if (!start.ok) throw new ApiError(start.status, safeJson(await start.text()));
    const session = start.headers.get("X-Goog-Upload-URL");
    if (!session) throw new Error("the server sent no X-Goog-Upload-URL");
    // Like the SDKs: keep the session's path and query, talk to the host we already use.
    const target = new URL(session, this.base);
    const ours = new URL(this.base);
    target.protocol = ours.protocol;
    target.host = ours.host;

    let offset = 0;
    for (;;) {
      const chunk = blob.slice(offset, offset + CHUNK);
      const last = offset + chunk.size >= blob.size;
      const res = await this.sendChunk(target.href, chunk, offset, last, (n) => onProgress(offset + n, blob.size), signal);
      offset += chunk.size;
      onProgress(offset, blob.size);
      if (res.uploadStatus === "final") return safeJson(res.body).file;
      if (res.uploadStatus !== "active" || last) throw new Error(`upload stopped: status ${res.uploadStatus ?? "missing"}`);
    }
  }

  sendChunk(url, chunk, offset, last, onLoaded, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("x-goog-api-key", this.key);
      xhr.setRequestHeader("X-Goog-Upload-Command", last ? "upload, finalize" : "upload");
      xhr.setRequestHeader("X-Goog-Upload-Offset", String(offset));
      xhr.upload.onprogress = (e) => onLoaded(e.loaded);
      xhr.onload = () => {
        if (xhr.status >= 400) reject(new ApiError(xhr.status, safeJson(xhr.responseText)));
        else resolve({ uploadStatus: xhr.getResponseHeader("X-Goog-Upload-Status"), body: xhr.responseText });
      };
      xhr.onerror = () => reject(new Error("network error during upload"));
      xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
      signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(chunk);
    });
  }

  // streamGenerateContent?alt=sse: calls onChunk(response) for each event as it arrives.
  async stream(model, request, onChunk, signal) {
    const res = await fetch(this.url(`${VERSION}/${model}:streamGenerateContent?alt=sse`), {
      method: "POST",
      signal,
      headers: { "x-goog-api-key": this.key, "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    if (!res.ok) throw new ApiError(res.status, safeJson(await res.text()));
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const sse = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      const events = sse.push(done ? decoder.decode() + "\n\n" : decoder.decode(value, { stream: true }));
      for (const event of events) {
        if (event.error) throw new ApiError(event.error.code ?? 500, event);
        onChunk(event);
      }
      if (done) return;
    }
  }
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return { error: { message: text.slice(0, 300) } }; }
}
