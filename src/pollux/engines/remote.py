"""OpenAI-compatible inference servers as an engine: vLLM, SGLang, Ollama, llama.cpp, LM Studio,
`transformers serve`. Catalog: `engine = "openai"`, `source` = the server's OpenAI base URL (or a list of
replica URLs), optional `family` (prompt and box conventions), `options = { model, dialect, api_key_env,
max_images, max_in_flight, connect_timeout, read_timeout, retries, audio, tools, extra_body,
stream_interval_ms }`. The dialect (engines/openai_dialects.py) is learnt from the server's /v1/models
when the entry names none.

Requests stream on the event loop (`astream`): Pollux never serialises them (the server batches); at most
`max_in_flight` per entry. Leaving the stream early closes the upstream connection, which cancels the
request at the server. Retries happen only before the first token; replicas are picked by fewest
outstanding requests, skipping those that failed recently. The streamed POST itself goes over the lean
HTTP/1.1 client of engines/http_stream.py (httpx where that cannot serve: no httptools, a proxy set); the
other calls (/v1/models, /tokenize) use httpx. What Pollux adds in front of the server is measured per
request (pollux.request_timing: the Server-Timing header and pollux_remote_added_seconds).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from pollux import fastjson, request_timing
from pollux.engines import boxes, grounding, http_stream
from pollux.engines import openai_dialects as dialects
from pollux.engines import openai_mapping as mapping
from pollux.engines.options import RemoteOptions
from pollux.engines.base import Capabilities, Delta, Engine, GenerationParams
from pollux.errors import (FailedPrecondition, Internal, InvalidArgument, ModelUnavailable, ResourceExhausted,
                           Unavailable)
from pollux.prompt_types import Image, Prompt, Text

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.remote")

NATIVE_BOX_FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
UNHEALTHY_SECONDS = 2.0  # a failed replica is skipped this long (then tried again)


def replica_urls(source: Any) -> list[str]:
    urls = [source] if isinstance(source, str) else list(source or ())
    urls = [str(u).strip().rstrip("/") for u in urls if str(u).strip()]
    if not urls:
        raise InvalidArgument("An openai engine entry needs `source`: the server's OpenAI base URL "
                              "(e.g. http://gpu-box:8000/v1) or a list of them.")
    return urls


@dataclass
class Replica:
    url: str  # the OpenAI base, …/v1
    outstanding: int = 0
    healthy: bool | None = None  # None: not contacted yet
    last_error: str | None = None
    retry_at: float = 0.0
    tokenize: bool | None = None  # vLLM's /tokenize (None: not tried)

    @functools.cached_property
    def chat_url(self) -> httpx.URL:
        """Parsed once: httpx parses (and checks the host of) a string URL on every request."""
        return httpx.URL(self.url + "/chat/completions")

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def json(self) -> dict:
        return {"url": self.url, "healthy": self.healthy, "outstanding": self.outstanding,
                "lastError": self.last_error}


class _Retry(Exception):
    """A failure before the first token: another attempt (or replica) may succeed."""


class RemoteEngine(Engine):
    name = "openai"
    serialised = False
    Options = RemoteOptions

    def __init__(self, entry: "ModelEntry", settings: "Settings"):
        super().__init__(entry, settings)
        opts: RemoteOptions = self.options
        self.replicas = [Replica(u) for u in replica_urls(entry.source)]
        self.model: str | None = opts.model
        self.api_key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
        self.max_in_flight = opts.max_in_flight
        self.retries = opts.retries
        self.timeout = httpx.Timeout(opts.read_timeout, connect=opts.connect_timeout)
        self.extra_body = dict(opts.extra_body)
        self.dialect: dialects.Dialect | None = dialects.named(opts.dialect) if opts.dialect else None
        self.stream_interval = opts.stream_interval_ms / 1000
        self.capabilities = Capabilities(
            mime_types=frozenset({"image/*", "video/*", "audio/*"}), video=True, audio=opts.audio,
            boxes=entry.family in NATIVE_BOX_FAMILIES, json_schema=True, streaming=True,
            max_images=opts.max_images or None, tools=opts.tools)
        self.native_count_source = "estimate"
        self._guard = threading.Lock()  # replica state and the in-flight count
        self._load_lock = threading.Lock()
        self._learn_at = 0.0  # when to ask /v1/models again for what the entry does not say
        self._in_flight = 0
        self._sync = httpx.Client(timeout=httpx.Timeout(30.0, connect=self.timeout.connect), headers=self._headers())
        self._clients: dict[int, httpx.AsyncClient] = {}  # per event loop (a client belongs to one loop)
        self._streams: dict[int, http_stream.StreamClient] = {}  # the same, for the chat POST (engines/http_stream.py)
        self._image_costs: dict[tuple, int] = {}
        self._text_counts: dict[str, int] = {}
        self._data_urls = mapping.DataURLCache(opts.image_cache_bytes)

    # ------------------------------------------------------------------------------ life cycle

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def describe(self, replica: Replica | None = None) -> str:
        where = replica.url if replica else ", ".join(r.url for r in self.replicas)
        return f"the {self.entry.id} engine at {where}"

    def load(self) -> None:
        """Cheap: learns once from /v1/models what the entry does not name: the served model (the first)
        and the server's dialect. A server that does not answer fails the request only when the model
        itself is unknown (otherwise it is asked again a little later)."""
        if self.model and self.dialect:
            return
        with self._load_lock:
            if (self.model and self.dialect) or (self.model and time.monotonic() < self._learn_at):
                return
            errors = []
            for replica in self.replicas:
                try:
                    r = self._sync.get(replica.url + "/models", timeout=self.timeout.connect or 5)
                    r.raise_for_status()
                    served = [m for m in r.json().get("data", []) if m.get("id")]
                except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
                    self._mark(replica, False, f"GET /models: {e}")
                    errors.append(str(e))
                    continue
                self._mark(replica, True)
                if served:
                    model = self.model or served[0]["id"]
                    mine = next((m for m in served if m["id"] == model), served[0])
                    self.dialect = self.dialect or dialects.recognise(mine.get("owned_by"), r.headers.get("server"))
                    self.model = model
                    return
                errors.append("it serves no model")
            self._learn_at = time.monotonic() + UNHEALTHY_SECONDS
            if self.model:
                return
            raise Unavailable(f"The model {self.entry.id} is unavailable: {self.describe()} does not answer "
                              f"({'; '.join(errors)}).")

    @property
    def speaks(self) -> dialects.Dialect:
        return self.dialect or dialects.DIALECTS["openai"]

    def unload(self) -> None:
        """Nothing to free: the weights live on the server."""

    def info(self) -> dict[str, Any]:
        return {"remote": {"model": self.model, "family": self.entry.family or None,
                           "dialect": self.dialect.name if self.dialect else None,
                           "contextTokens": self.entry.input_token_limit,
                           "inFlight": self._in_flight, "maxInFlight": self.max_in_flight,
                           "nativeTokenCount": self.native_count_source,
                           "replicas": [r.json() for r in self.replicas]}}

    # ------------------------------------------------------------------------------ replicas

    def _mark(self, replica: Replica, ok: bool, error: str | None = None) -> None:
        with self._guard:
            replica.healthy = ok
            if ok:
                replica.retry_at = 0.0
            else:
                replica.last_error = error
                replica.retry_at = time.monotonic() + UNHEALTHY_SECONDS

    def _pick(self, avoid: set[int]) -> Replica:
        """Fewest outstanding among replicas not failing recently; when all are, the one to retry first."""
        now = time.monotonic()
        with self._guard:
            pool = [r for i, r in enumerate(self.replicas) if i not in avoid] or self.replicas
            ready = [r for r in pool if r.retry_at <= now]
            replica = (min(ready, key=lambda r: r.outstanding) if ready else min(pool, key=lambda r: r.retry_at))
            replica.outstanding += 1
            return replica

    def _release(self, replica: Replica) -> None:
        with self._guard:
            replica.outstanding -= 1

    # ------------------------------------------------------------------------------ tokens

    def count_text(self, text: str) -> int:
        return math.ceil(len(text) / 4) if text else 0

    def count_tokens(self, prompt: Prompt) -> int:
        """The server's count (vLLM /tokenize: text exactly, each image size measured once), else an estimate.

        More images than the entry's `max_images` never fit, so the prompt thins video frames down to it.
        """
        count = self._server_count(prompt)
        if count is None:
            count = self._estimate(prompt)
        images = len(prompt.images())
        if self.capabilities.max_images is not None and images > self.capabilities.max_images:
            count += self.entry.input_token_limit + 1
        return count

    @property
    def prepares_on_loop(self) -> bool:  # type: ignore[override]
        return bool(self.model and self.dialect)  # learnt from /v1/models: until then `load` asks the server

    def quick_count(self, prompt: Prompt) -> tuple[int, str] | None:
        """A generation well inside the context is counted by the estimate: a /tokenize round trip before every
        request would add its latency to every answer, and a prompt that does not fit after all is refused by
        the server itself (its 400, passed on). Past half the context the server counts exactly."""
        if not self.prepares_on_loop:
            return None
        estimate = self._estimate(prompt)
        too_many = self.capabilities.max_images is not None and len(prompt.images()) > self.capabilities.max_images
        if too_many or estimate * 2 > self.entry.input_token_limit:
            return None
        return estimate, "estimate"

    def _estimate(self, prompt: Prompt) -> int:
        total = self.count_text(prompt.system or "")
        for turn in prompt.turns:
            for seg in turn.segments:
                if isinstance(seg, Text):
                    total += self.count_text(seg.text)
                elif isinstance(seg, Image):
                    total += self.options.image_tokens
        return total

    def _tokenize(self, replica: Replica, messages: list[dict]) -> int | None:
        """The server's token count of chat messages in its dialect's tokenizer endpoint (None: it has none)."""
        style = self.speaks.tokenize
        key = f"{style}:{json.dumps(messages)}"
        if key in self._text_counts:
            return self._text_counts[key]
        if style == "messages":  # vLLM: the chat template applied, images included
            r = self._sync.post(replica.root + "/tokenize", json={"model": self.model, "messages": messages,
                                                                   "add_generation_prompt": True})
            count = None if _absent(r) else int(r.raise_for_status().json()["count"])
        elif style == "prompt":  # SGLang: text only
            r = self._sync.post(replica.root + "/tokenize", json={"model": self.model, "prompt": _text_of(messages)})
            answer = None if _absent(r) else r.raise_for_status().json()
            count = None if answer is None else int(answer.get("count", len(answer["tokens"])))
        else:  # llama.cpp: its own template rendered (/apply-template), then /tokenize of that text
            t = self._sync.post(replica.root + "/apply-template", json={"messages": messages})
            text = _text_of(messages) if _absent(t) else str(t.raise_for_status().json()["prompt"])
            r = self._sync.post(replica.root + "/tokenize", json={"content": text})
            count = None if _absent(r) else len(r.raise_for_status().json()["tokens"])
        if count is None:
            replica.tokenize = False  # no tokenizer endpoint there: the local estimate from now on
            return None
        replica.tokenize = True
        self._text_counts[key] = count
        if len(self._text_counts) > 1024:  # a small memo: repeated prompts cost no round trip
            self._text_counts.pop(next(iter(self._text_counts)))
        return count

    def _server_count(self, prompt: Prompt) -> int | None:
        now = time.monotonic()
        replica = next((r for r in self.replicas if r.tokenize is not False and r.retry_at <= now), None)
        if replica is None or not self.model or self.speaks.tokenize is None:
            return None
        try:
            text_only = Prompt([type(t)(t.role, [s for s in t.segments if not isinstance(s, Image)])
                                for t in prompt.turns], prompt.system)
            count = self._tokenize(replica, mapping.messages(text_only, audio=False))
            if count is None:
                return None
            images = prompt.images()
            if self.speaks.tokenize == "messages":  # each image size measured once at the server
                count += sum(self._image_cost(replica, image) for image in images)
                source = "server"
            else:  # a text-only tokenizer: images estimated
                count += self.options.image_tokens * len(images)
                source = "server-text" if images else "server"
        except (httpx.TransportError, httpx.HTTPStatusError) as e:  # the server is down or failing
            self._mark(replica, False, f"/tokenize: {e}")
            log.warning("%s: /tokenize failed (%s); counting tokens locally", self.describe(replica), e)
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # something else answers: not a tokenizer
            replica.tokenize = False
            log.warning("%s: /tokenize answered unexpectedly (%s); counting tokens locally", self.describe(replica), e)
            return None
        self.native_count_source = source
        return count

    def _image_cost(self, replica: Replica, image: Image) -> int:
        """Tokens one image of this size adds (measured once per size: the server's count with and without it)."""
        frame = image.timestamp is not None
        key = (mapping.sent_size(image), frame)
        if key not in self._image_costs:
            bare = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
            with_image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": self._data_urls(image)}},
                                                       {"type": "text", "text": "x"}]}]
            self._image_costs[key] = (self._tokenize(replica, with_image) or 0) - (self._tokenize(replica, bare) or 0)
        return self._image_costs[key]

    # ------------------------------------------------------------------------------ generation

    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        """The thread-side form (direct use, tools): runs `astream` on a private event loop."""
        loop = asyncio.new_event_loop()
        stream: AsyncGenerator[Delta, None] = self.astream(prompt, params)
        try:
            while not cancel.is_set():
                try:
                    yield loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            for clients in (self._clients, self._streams):
                client = clients.pop(id(loop), None)
                if client is not None:
                    loop.run_until_complete(client.aclose())
            loop.close()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None:
            limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=64)
            client = self._clients[id(loop)] = httpx.AsyncClient(timeout=self.timeout, limits=limits,
                                                                 headers=self._headers())
        return client

    def _stream_client(self) -> http_stream.StreamClient | None:
        """The lean client for the streamed POST (None: httpx does it, where httptools is missing or a proxy is set)."""
        if not http_stream.usable():
            return None
        loop = asyncio.get_running_loop()
        client = self._streams.get(id(loop))
        if client is None:
            client = self._streams[id(loop)] = http_stream.StreamClient(self.timeout, self._headers())
        return client

    async def _send(self, replica: Replica, payload: bytes) -> "httpx.Response | http_stream.StreamResponse":
        lean = self._stream_client()
        if lean is not None:
            return await lean.post(replica.chat_url, payload)
        client = self._client()
        request = client.build_request("POST", replica.chat_url, content=payload,
                                       headers={"Content-Type": "application/json"})
        return await client.send(request, stream=True)

    async def astream(self, prompt: Prompt, params: GenerationParams) -> AsyncGenerator[Delta, None]:
        """Deltas as the server streams them; closing this iterator closes the upstream request."""
        if not self.model:
            await asyncio.to_thread(self.load)
        # Encoding images is CPU work: off the event loop, in one hop, unless every one is encoded already
        # (a thread hop costs more than building the request); once for every attempt.
        if all(self._data_urls.cached(image) for image in prompt.images()):
            body, payload = self._request(prompt, params)
        else:
            started = time.perf_counter()
            body, payload = await asyncio.to_thread(self._request, prompt, params)
            request_timing.add_media(time.perf_counter() - started)  # encoding the images for the server
        hold = params.response_mime_type == "text/x.enum" or self._wants_boxes(prompt, params)
        state = mapping.StreamState(candidates=max(1, params.candidate_count), hold_text=hold)
        await self._enter()
        try:
            tried: set[int] = set()
            for attempt in range(self.retries + 1):
                replica = self._pick(tried)
                tried.add(self.replicas.index(replica))
                try:
                    async with aclosing(self._attempt(replica, payload, body, state)) as deltas:
                        async for delta in deltas:
                            yield delta
                    break
                except _Retry as e:
                    self._mark(replica, False, str(e))
                    log.warning("%s failed before the first token (%s); attempt %d of %d", self.describe(replica),
                                e, attempt + 1, self.retries + 1)
                    if attempt == self.retries:
                        raise Unavailable(f"The model {self.entry.id} is unavailable: {self.describe(replica)} "
                                          f"did not answer ({e}).") from None
                    await asyncio.sleep(0.1 * (attempt + 1))
                finally:
                    self._release(replica)
        finally:
            with self._guard:
                self._in_flight -= 1
        try:
            final = state.finish()
        except mapping.MalformedAnswer as e:
            raise self._malformed(e) from None
        for delta in final:
            if hold and delta.text:
                delta.text = self._post_process(delta.text, prompt, params)
            yield delta

    def _request(self, prompt: Prompt, params: GenerationParams) -> tuple[dict, bytes]:
        body = mapping.request_body(prompt, params, self.model or "", audio=self.capabilities.audio, extra=self.extra_body,
                                    image_url=self._data_urls, dialect=self.speaks)
        return body, mapping.encode_body(body)

    async def _enter(self) -> None:
        while True:  # a per-entry cap (default generous): the server queues and batches the rest itself
            with self._guard:
                if self._in_flight < self.max_in_flight:
                    self._in_flight += 1
                    return
            await asyncio.sleep(0.01)

    async def _attempt(self, replica: Replica, payload: bytes, body: dict,
                       state: mapping.StreamState) -> AsyncGenerator[Delta, None]:
        try:
            request_timing.mark_upstream_sent()
            resp = await self._send(replica, payload)
            try:
                if resp.status_code >= 400:
                    raise self._refusal(replica, resp.status_code, await resp.aread(), body)
                self._mark(replica, True)
                # Tokens arriving within `stream_interval` of the last chunk sent wait for the next one: a GPU
                # engine's 50-100 tokens/s per stream would otherwise cost a Gemini chunk (JSON, SSE frame,
                # write) each. The first token goes at once; a held one waits at most for the next arrival.
                pending: list[Delta] = []
                sent = 0.0
                async with aclosing(_event_batches(resp)) as batches:
                    async for events in batches:
                        pending = mapping.merged(pending + [d for event in events for d in state.feed(event)])
                        if pending and time.monotonic() - sent >= self.stream_interval:
                            for delta in pending:
                                yield delta
                            pending, sent = [], time.monotonic()
                request_timing.mark_upstream_done()
                for delta in pending:
                    yield delta
                if not state.complete():  # the connection ended cleanly mid-answer: the server died
                    raise httpx.RemoteProtocolError("the stream ended before every answer finished")
            finally:
                # Closing an unfinished stream closes its connection: that is what cancels the request at
                # the server. Shielded: a client's disconnect cancels this task, and a cancelled close
                # would leave the connection (and the server's generation) running.
                with anyio.CancelScope(shield=True):
                    await resp.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise _Retry(f"cannot connect: {e or type(e).__name__}") from None
        except (httpx.ReadTimeout, httpx.WriteTimeout) as e:
            self._mark(replica, False, f"timed out: {type(e).__name__}")
            raise Unavailable(f"The model {self.entry.id} is unavailable: {self.describe(replica)} timed out "
                              f"({type(e).__name__} after {self.timeout.read:.0f} s).") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            if not state.started:
                raise _Retry(f"the connection broke: {e or type(e).__name__}") from None
            self._mark(replica, False, f"stopped mid-answer: {e or type(e).__name__}")
            raise Unavailable(f"The model {self.entry.id} became unavailable: {self.describe(replica)} stopped "
                              "mid-answer.") from None
        except mapping.MalformedAnswer as e:
            raise self._malformed(e, replica) from None

    def _malformed(self, e: Exception, replica: Replica | None = None) -> Internal:
        log.error("%s sent a malformed answer: %s", self.describe(replica), e)  # the cause, for the operator
        return Internal(f"The model {self.entry.id} sent a malformed answer (the cause is in Pollux's log).")

    def _refusal(self, replica: Replica, status: int, raw: bytes, body: dict) -> Exception:
        err, message = mapping.error_message(raw)
        if status >= 500:
            return _Retry(f"HTTP {status}: {message}")
        if status in (400, 422):
            param = (err.get("error") or {}).get("param") if isinstance(err.get("error"), dict) else None
            name = mapping.GEMINI_FIELDS.get(str(param)) if param else None
            name = name or mapping.rejected_field(err, message)
            what = f"{name}" if name else "the request"
            return InvalidArgument(f"{self.describe(replica)} rejected {what}: {message}")
        if status in (401, 403):
            return FailedPrecondition(f"{self.describe(replica)} refused Pollux's credentials (HTTP {status}): "
                                      f"{message}. Set the key in the variable the entry's api_key_env names.")
        if status == 404:
            return ModelUnavailable(f"{self.describe(replica)} does not serve {self.model!r} (HTTP 404): {message}")
        if status == 429:
            return ResourceExhausted(f"{self.describe(replica)} is overloaded (HTTP 429): {message}")
        return InvalidArgument(f"{self.describe(replica)} answered HTTP {status}: {message}")

    # ------------------------------------------------------------------------------ answers

    def _wants_boxes(self, prompt: Prompt, params: GenerationParams) -> bool:
        return (self.entry.family in NATIVE_BOX_FAMILIES and bool(prompt.images())
                and grounding.is_box_request(prompt.last_user_text(), params.response_schema))

    def _post_process(self, text: str, prompt: Prompt, params: GenerationParams) -> str:
        if params.response_mime_type == "text/x.enum":
            return mapping.enum_answer(text)
        image = prompt.images()[0]
        found = boxes.native_detections(text, self.entry.family, self._input_size(mapping.sent_size(image)))
        if not found:
            return text
        user = prompt.last_user_text()
        if grounding.wants_json(user, params.response_mime_type):
            return boxes.to_json_text(found, params.response_schema)
        return boxes.to_gemini_text(found, 1)

    def _input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size the server's Qwen2.5-VL processor resizes the image as sent to (its boxes' pixel space)."""
        opts: RemoteOptions = self.options
        return smart_resize(size, factor=opts.patch_factor, min_pixels=opts.min_pixels, max_pixels=opts.max_pixels)


def smart_resize(size: tuple[int, int], factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 12845056) -> tuple[int, int]:
    """Qwen2-VL/2.5-VL's processor rule: each side a multiple of `factor`, the area within [min, max] pixels."""
    w, h = size
    h_bar, w_bar = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        h_bar, w_bar = math.floor(h / beta / factor) * factor, math.floor(w / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar, w_bar = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return w_bar, h_bar


def _absent(r: httpx.Response) -> bool:
    """The server has no such endpoint."""
    return r.status_code in (404, 405, 501)


def _text_of(messages: list[dict]) -> str:
    """The text of chat messages, for a tokenizer that takes plain text."""
    parts = []
    for m in messages:
        content = m.get("content")
        parts += [content] if isinstance(content, str) else [c["text"] for c in content or () if c.get("type") == "text"]
    return "\n".join(parts)


async def _event_batches(resp: "httpx.Response | http_stream.StreamResponse") -> AsyncGenerator[list[dict], None]:
    """The SSE `data:` payloads of a chat-completions stream, a list per network read (a plain JSON answer
    is accepted too)."""
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        raw = await resp.aread()
        try:
            yield [fastjson.loads(raw)]
        except ValueError:
            raise mapping.MalformedAnswer(f"the answer is neither SSE nor JSON: {raw[:200]!r}") from None
        return
    reader = mapping.SSEReader()
    async for data in resp.aiter_bytes():  # read to the end (past [DONE]) so the connection is reused
        if events := reader.feed(data):
            yield events
