// The one change from the seed: where the server is. Everything else is the stock SDK.
// POLLUX_BASE_URL: the Pollux server (no /v1beta suffix; the SDK adds it). API_KEY: a Pollux key.
export const baseUrl = process.env.POLLUX_BASE_URL ?? "http://127.0.0.1:8080";
// Folder with jetpack.jpg, piranha.jpg, firefighter.jpg and GreatRedSpot.mp4
// (make them with: python ../python/sample_media.py media).
export const mediaPath = process.env.MEDIA_PATH ?? "media";
// The seed polls every 10 s; POLL_MS shortens it.
export const pollMs = Number(process.env.POLL_MS ?? 10_000);
