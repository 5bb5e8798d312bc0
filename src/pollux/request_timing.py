"""Where a request's time goes in Pollux itself, for a remote engine: what Pollux adds in front of the server.

The ASGI middleware (api/ops.Observe) starts a `RequestTiming` when a request arrives and puts it in a
context variable (tasks and worker threads the request starts copy the context and share the object);
media preparation adds its seconds (`media`), the remote engine marks when the upstream request is sent
(`upstream_sent`, the first attempt) and when the upstream's last byte arrived (`upstream_done`), and the
middleware marks the response's last byte. Added latency = before + after:

    before = upstream_sent - arrived - media      (parse, auth, prompt assembly, the request body)
    after  = finished - upstream_done             (the last chunks re-framed and written)

They go to the `Server-Timing` header (`media`, `pre`, `engine`, `post`, `total`, in ms; a streamed
answer's header leaves when only `media` is known) and to the pollux_remote_added_seconds histogram.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass


@dataclass
class RequestTiming:
    arrived: float  # time.perf_counter() at arrival
    media: float = 0.0  # seconds spent preparing media (decode, scale, encode for the server)
    upstream_sent: float | None = None
    upstream_done: float | None = None
    finished: float | None = None

    @property
    def remote(self) -> bool:
        return self.upstream_sent is not None and self.upstream_done is not None

    def before(self) -> float:
        assert self.upstream_sent is not None
        return max(0.0, self.upstream_sent - self.arrived - self.media)

    def after(self, now: float | None = None) -> float:
        assert self.upstream_done is not None
        end = self.finished if now is None else now
        assert end is not None
        return max(0.0, end - self.upstream_done)

    def server_timing(self, now: float) -> str:
        """The Server-Timing header value at `now` (the response's start): what is known by then."""
        parts = [f"media;dur={self.media * 1000:.3f}"]
        if self.remote:
            assert self.upstream_sent is not None and self.upstream_done is not None
            parts += [f"pre;dur={self.before() * 1000:.3f}",
                      f"engine;dur={(self.upstream_done - self.upstream_sent) * 1000:.3f}",
                      f"post;dur={self.after(now) * 1000:.3f}"]
        parts.append(f"total;dur={(now - self.arrived) * 1000:.3f}")
        return ", ".join(parts)


current: contextvars.ContextVar[RequestTiming | None] = contextvars.ContextVar("pollux_request_timing", default=None)


def add_media(seconds: float) -> None:
    if (t := current.get()) is not None:
        t.media += seconds


def mark_upstream_sent() -> None:
    if (t := current.get()) is not None and t.upstream_sent is None:  # the first attempt's
        t.upstream_sent = time.perf_counter()


def mark_upstream_done() -> None:
    if (t := current.get()) is not None:
        t.upstream_done = time.perf_counter()
