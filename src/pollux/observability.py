"""Operations: a request id in every log line, JSON logs, Prometheus metrics, and a graceful drain.

The per-request part is an ASGI middleware (pollux.api.ops.Observe): it takes the request id from `X-Request-Id`
(or makes one), puts it in a context variable that every log record of the request reads (threads
started with run_in_threadpool / asyncio.to_thread copy the context), returns it in the response
header, counts the request by route template and code, times it, counts upload bytes as they are
received, and, while the node drains, answers new requests 503 so the balancer sends them elsewhere.

Drain (`serve`): SIGTERM starts draining; the node keeps serving what is in flight (streams, upload
chunks) for up to `drain_seconds` while the media processor claims no new job (`Processor.drain`: running
jobs finish or are given back unfailed for another worker), then uvicorn's own shutdown runs. A second
signal stops at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import Scope

if TYPE_CHECKING:
    from pollux.api.context import AppContext
    from pollux.request_timing import RequestTiming
    from pollux.settings import Settings

log = logging.getLogger("pollux.ops")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("pollux_request_id", default=None)
_VERBS = ("generateContent", "streamGenerateContent", "countTokens")
# Fine at the low end: the added latency's goal is a few milliseconds.
ADDED_BUCKETS = (.00025, .0005, .00075, .001, .0015, .002, .003, .004, .005, .0075, .01, .015, .02, .03, .05, .1,
                 .25, 1, 5)


# ---------------------------------------------------------------------------------------------- logging

class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


def configure_logging(settings: "Settings") -> None:
    """The root handler every logger (uvicorn's included, see `serve`) writes through."""
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    handler = next((h for h in root.handlers if getattr(h, "_pollux", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._pollux = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json"
                         else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


# ---------------------------------------------------------------------------------------------- metrics

class Ops:
    """Per-app operational state: the metrics registry, in-flight work, the drain flag."""

    def __init__(self, context: "AppContext | None" = None):
        self.registry = CollectorRegistry()
        self.requests = Counter("pollux_http_requests", "HTTP requests by route template and status code",
                                ["method", "route", "code"], registry=self.registry)
        self.latency = Histogram("pollux_http_request_duration_seconds", "Time to the end of the response "
                                 "(a stream's last chunk)", ["method", "route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.remote_added = Histogram(
            "pollux_remote_added_seconds", "Time Pollux adds in front of a remote engine, per request: `before` "
            "(arrival to the upstream request sent, media preparation excluded), `after` (the upstream's last byte "
            "to the response's), `total` (both)", ["phase"], registry=self.registry, buckets=ADDED_BUCKETS)
        self.media_seconds = Histogram("pollux_remote_media_preparation_seconds", "Media preparation of a "
                                       "remote-engine request (decode, scale, encode for the server)",
                                       registry=self.registry, buckets=ADDED_BUCKETS)
        self.upload_bytes = Counter("pollux_upload_bytes", "Upload body bytes received", registry=self.registry)
        self.in_flight_gauge = Gauge("pollux_http_requests_in_flight", "Requests being served (ops routes "
                                     "excluded)", registry=self.registry)
        self.in_flight = 0
        self.draining = False
        self._lock = threading.Lock()
        self.context = context
        if context is not None:
            self.registry.register(_StateCollector(context, self))

    def observe_remote(self, timing: "RequestTiming") -> None:
        before, after = timing.before(), timing.after()
        self.remote_added.labels("before").observe(before)
        self.remote_added.labels("after").observe(after)
        self.remote_added.labels("total").observe(before + after)
        self.media_seconds.observe(timing.media)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
        self.in_flight_gauge.inc()

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self.in_flight_gauge.dec()

    def drain(self, seconds: float, poll: float = 0.05) -> bool:
        """Refuse new requests and media jobs, then wait for what is in flight (requests, and running jobs
        which the processor gives back unfailed if they outlast the drain); true if the requests finished."""
        self.draining = True
        log.info("draining: %d request(s) in flight, waiting up to %.0fs", self.in_flight, seconds)
        deadline = time.monotonic() + seconds
        media = None
        if self.context is not None:  # claims nothing new from now on (pollux.files.processing)
            media = threading.Thread(target=self.context.files.processor.drain, args=(seconds,),
                                     name="pollux-drain-media", daemon=True)
            media.start()
        while self.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(poll)
        if media is not None:
            media.join(max(0.0, deadline - time.monotonic()))
        if self.in_flight > 0:
            log.warning("drain timed out with %d request(s) in flight", self.in_flight)
            return False
        log.info("drained")
        return True


class _StateCollector:
    """Gauges read at scrape time from the services, so the request path pays nothing for them."""

    def __init__(self, context: "AppContext", ops: Ops):
        self.context, self.ops = context, ops

    def collect(self):
        from pollux.files.store import now_us

        queued = GaugeMetricFamily("pollux_media_jobs_queued", "Media jobs waiting or running, all nodes (the "
                                   "jobs table)")
        oldest = GaugeMetricFamily("pollux_media_oldest_job_age_seconds", "Age of the oldest media job")
        try:
            count, first = self.context.files.processor.jobs.depth()
            queued.add_metric([], count)
            oldest.add_metric([], (now_us() - first) / 1e6 if first else 0.0)
            yield queued
            yield oldest
        except Exception:  # the database is down: /readyz says so; the other metrics still come
            log.warning("media queue metrics unavailable", exc_info=True)
        engines = GaugeMetricFamily("pollux_engine_in_flight", "Generations running or queued on an engine",
                                    labels=["model"])
        for entry_id, entry in self.context.catalog.entries.items():
            engines.add_metric([entry_id], self.context.engines.waiting(entry))
        yield engines
        yield from _cache_metrics()
        draining = GaugeMetricFamily("pollux_draining", "1 while the node drains after SIGTERM")
        draining.add_metric([], 1 if self.ops.draining else 0)
        yield draining


def _cache_metrics():
    """Hits and misses of the in-memory caches that count them (pollux.lru.BytesLRU)."""
    from pollux.media import pipeline

    hits = CounterMetricFamily("pollux_cache_hits", "Lookups served from a cache", labels=["cache"])
    misses = CounterMetricFamily("pollux_cache_misses", "Lookups a cache could not serve", labels=["cache"])
    lru = getattr(pipeline, "_prepared_images", None)
    if lru is not None and hasattr(lru, "hits"):
        hits.add_metric(["prepared_images"], lru.hits)
        misses.add_metric(["prepared_images"], lru.misses)
    yield hits
    yield misses


def route_label(scope: Scope) -> str:
    """The route template (`/{version}/models/{target}:generateContent`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    if "{target}" in path:
        verb = scope.get("path", "").rpartition(":")[2]
        path = path.replace("{target}", "{model}:" + verb if verb in _VERBS else "{model}")
    return path


# ---------------------------------------------------------------------------------------------- serving

def serve(app, settings: "Settings") -> None:
    """uvicorn, with SIGTERM draining first (see the module doc) and our log handler for its loggers."""
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            timeout_graceful_shutdown=5, log_config=None)
    _DrainingServer(config, app.state.ops, settings.drain_seconds).run()


class _DrainingServer(uvicorn.Server):
    def __init__(self, config, ops: Ops, drain_seconds: float):
        super().__init__(config)
        self.ops, self.drain_seconds = ops, drain_seconds
        self._drain: threading.Thread | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if sig == signal.SIGTERM and self._drain is None and self.drain_seconds > 0:
            def drain_then_stop() -> None:
                self.ops.drain(self.drain_seconds)
                super(_DrainingServer, self).handle_exit(sig, None)

            self._drain = threading.Thread(target=drain_then_stop, name="pollux-drain", daemon=True)
            self._drain.start()
            return
        super().handle_exit(sig, frame)


# ---------------------------------------------------------------------------------------------- readiness

def readiness(context: "AppContext") -> dict[str, str]:
    """{part: "ok" or what is wrong} for the database, the blob store and the engines (blocking: run in a
    thread). Each check is a real round trip: a fresh connection, a probe write, a replica's health."""
    checks = {}
    for name, check in (("database", _database), ("blobs", _blobs), ("engines", _engines)):
        try:
            problem = check(context)
        except Exception as e:  # any failure of a part is its readiness answer
            problem = f"{type(e).__name__}: {e}"
        checks[name] = problem or "ok"
    return checks


def _database(context: "AppContext") -> str | None:
    store = context.files.store
    if store.is_sqlite:  # pooled connections would still read a file that is gone: open a new one
        import sqlite3

        path = store.engine.url.database
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return None
    with store.engine.connect() as c:
        c.exec_driver_sql("SELECT 1")
    return None


def _blobs(context: "AppContext") -> str | None:
    blobs = context.files.blobs
    check = getattr(blobs, "check_writable", None)  # what start-up checks: a probe write (S3: its own probe)
    if check is not None:
        check()
    return None


def _engines(context: "AppContext") -> str | None:
    """Remote engines need one healthy replica; local engines need their code importable (weights load
    on first use and are reported by models.get, not here: a node without a model loaded is still ready)."""
    hub, problems = context.engines, []
    for entry in context.catalog.entries.values():
        name = hub.engine_name(entry)
        if name == "openai":
            replicas = hub.info(entry).get("remote", {}).get("replicas", [])
            if replicas and not any(r.get("healthy", True) for r in replicas):
                problems.append(f"{entry.id}: no healthy replica ({replicas[0].get('lastError')})")
            continue
        try:
            hub.get(entry)  # the engine object (not its weights): its code imports, as a request would need
        except Exception as e:
            problems.append(f"{entry.id}: engine {name!r} unavailable ({getattr(e, 'message', e)})")
    return "; ".join(problems) or None
