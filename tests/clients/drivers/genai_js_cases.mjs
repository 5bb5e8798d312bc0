// The Node SDK `@google/genai` on the parts of issue 12: cachedContents, the Interactions API and
// mediaResolution, as its docs use them, pointed at Pollux with `httpOptions.baseUrl`.
// Usage: node genai_js_cases.mjs BASE_URL MEDIA_DIR OUT_JSON; writes {case: observations} like harness.py.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GoogleGenAI } from '@google/genai';

const [baseUrl, mediaDir, out] = process.argv.slice(2);
const MODEL = 'gemini-2.5-flash';
const ai = new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl } });
const png = readFileSync(join(mediaDir, 'boxes.png')).toString('base64');
const LONG = 'The lighthouse keeper logged every ship that passed the northern cape. '.repeat(120);

const cases = {
  async caches_round_trip() {
    const cache = await ai.caches.create({ model: MODEL, config: {
      displayName: 'keeper log', systemInstruction: 'You are a harbour archivist.',
      contents: [{ role: 'user', parts: [{ text: LONG }] }], ttl: '300s' } });
    const got = await ai.caches.get({ name: cache.name });
    const listed = [];
    for await (const c of await ai.caches.list({ config: { pageSize: 1 } })) listed.push(c.name);
    const updated = await ai.caches.update({ name: cache.name, config: { ttl: '7200s' } });
    const answer = await ai.models.generateContent({ model: MODEL, contents: 'Which ships passed?',
      config: { cachedContent: cache.name } });
    await ai.caches.delete({ name: cache.name });
    let afterDelete = null;
    try { await ai.caches.get({ name: cache.name }); } catch (e) { afterDelete = e.status ?? String(e); }
    return { name: cache.name, model: cache.model, total: cache.usageMetadata?.totalTokenCount,
      gotSame: got.name === cache.name, listed: listed.includes(cache.name),
      extended: new Date(updated.expireTime) > new Date(cache.expireTime), text: answer.text,
      cachedTokens: answer.usageMetadata?.cachedContentTokenCount, afterDelete };
  },
  async interactions_round_trip() {
    const first = await ai.interactions.create({ model: MODEL, input: 'Name a colour.' });
    const second = await ai.interactions.create({ model: MODEL, input: 'And another?',
      previous_interaction_id: first.id });
    const got = await ai.interactions.get(second.id);
    await ai.interactions.delete(second.id);
    let afterDelete = null;
    try { await ai.interactions.get(second.id); } catch (e) { afterDelete = e.status ?? String(e); }
    return { id: first.id, status: first.status, firstJson: JSON.stringify(first),
      secondJson: JSON.stringify(second), gotId: got.id, afterDelete };
  },
  async media_resolution() {
    const ask = (mediaResolution) => ai.models.generateContent({ model: MODEL,
      contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/png', data: png } }, { text: 'Describe.' }] }],
      config: { mediaResolution } });
    const low = await ask('MEDIA_RESOLUTION_LOW');
    const high = await ask('MEDIA_RESOLUTION_HIGH');
    let bogus = null;
    try { await ask('MEDIA_RESOLUTION_BOGUS'); } catch (e) { bogus = e.status ?? String(e); }
    return { lowText: low.text, highText: high.text, lowTokens: low.usageMetadata?.promptTokenCount,
      highTokens: high.usageMetadata?.promptTokenCount, bogus };
  },
};

const results = {};
for (const [name, run] of Object.entries(cases)) {
  const t0 = Date.now();
  try { results[name] = { ok: true, ...(await run()), seconds: (Date.now() - t0) / 1000 }; }
  catch (e) { results[name] = { ok: false, error: String(e?.stack ?? e), seconds: (Date.now() - t0) / 1000 }; }
}
writeFileSync(out, JSON.stringify(results, null, 1));
