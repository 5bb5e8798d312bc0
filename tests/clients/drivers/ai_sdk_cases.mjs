// The Vercel AI SDK (`ai` + `@ai-sdk/google`) as its docs use it, pointed at Pollux with `baseURL`.
// Usage: node ai_sdk_cases.mjs BASE_URL MEDIA_DIR OUT_JSON; writes {case: observations} like harness.py.
// Runs from the node folder (ESM resolves bare imports next to the script).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { generateText, Output, streamText, uploadFile } from 'ai';
import { z } from 'zod';

const [baseUrl, mediaDir, out] = process.argv.slice(2);
const MODEL = 'gemini-3.5-flash';
const google = createGoogleGenerativeAI({ apiKey: 'test-key', baseURL: `${baseUrl}/v1beta` });
const png = readFileSync(join(mediaDir, 'boxes.png'));
const usage = (u) => ({ inputTokens: u?.inputTokens, outputTokens: u?.outputTokens, totalTokens: u?.totalTokens });

const cases = {
  async generate_text() {
    const r = await generateText({ model: google(MODEL), system: 'Be brief.', prompt: 'Write a vegetarian lasagna recipe.' });
    return { text: r.text, finishReason: r.finishReason, usage: usage(r.usage) };
  },
  async stream_text() {
    const r = streamText({ model: google(MODEL), prompt: 'Invent a new holiday and describe its traditions.' });
    const chunks = [];
    for await (const piece of r.textStream) chunks.push(piece);
    return { chunks: chunks.length, text: chunks.join(''), usage: usage(await r.usage), finishReason: await r.finishReason };
  },
  async image_part() {
    const r = await generateText({
      model: google(MODEL),
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Describe the image in detail.' },
        { type: 'image', image: png, mediaType: 'image/png' },
      ] }],
    });
    return { text: r.text, usage: usage(r.usage) };
  },
  async output_object() {
    const r = await generateText({
      model: google(MODEL),
      output: Output.object({ schema: z.object({ recipe: z.object({ name: z.string(), steps: z.array(z.string()) }) }) }),
      prompt: 'Generate a lasagna recipe.',
    });
    return { output: r.output };
  },
  async uploaded_file() {
    const up = await uploadFile({ api: google, data: new Uint8Array(png), mediaType: 'image/png' });
    const r = await generateText({
      model: google(MODEL),
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'What is in this file?' },
        { type: 'file', data: up.providerReference, mediaType: 'image/png' },
      ] }],
    });
    return { reference: up.providerReference, text: r.text, usage: usage(r.usage) };
  },
};

const results = {};
for (const [name, fn] of Object.entries(cases)) {
  const started = Date.now();
  try {
    results[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    const detail = [e?.statusCode, e?.responseBody, e?.cause?.message].filter(Boolean).join(' ');
    results[name] = { ok: false, error: `${e?.name}: ${e?.message} ${detail}`.slice(0, 2000), trace: String(e?.stack).slice(0, 3000) };
  }
  results[name].seconds = (Date.now() - started) / 1000;
  writeFileSync(out, JSON.stringify(results, null, 1));
}
