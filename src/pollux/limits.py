"""Per-project rate limits as Gemini has them: requests per minute (RPM), input tokens per minute (TPM,
counted by Gemini's rules: the request's promptTokenCount) and requests per day (RPD, a day that
starts at midnight Pacific time, as Gemini's does). Per project, not per key; per model.

What counts: generateContent, streamGenerateContent and Interactions calls (Gemini's "generate
requests"). countTokens is not charged: Gemini gives it its own, separate quota.

The limits table is small and read by every request, so each node keeps a copy refreshed every
`rate_limit_refresh_seconds`; the counters live in the database (pollux.files.limits_store), one
round trip per limited request, nothing at all for a project without limits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from pollux.errors import ResourceExhausted
from pollux.files.limits_store import ANY_MODEL, Charge, Limits, LimitStore

if TYPE_CHECKING:
    from pollux.settings import Settings

log = logging.getLogger("pollux.limits")
DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
SERVICE = "generativelanguage.googleapis.com"
# Gemini's own names for the three quotas (paid tier), as its 429 bodies carry them.
QUOTAS = {
    "rpm": (f"{SERVICE}/generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel"),
    "tpm": (f"{SERVICE}/generate_content_paid_tier_input_token_count",
            "GenerateContentPaidTierInputTokensPerModelPerMinute"),
    "rpd": (f"{SERVICE}/generate_requests_per_model_per_day", "GenerateRequestsPerDayPerProjectPerModel"),
}


def _pacific():
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # no tz database (a minimal image): Pacific standard time
        return timezone(timedelta(hours=-8))


PACIFIC = _pacific()


def day_window(now: float) -> tuple[int, int]:
    """(start, end) in epoch seconds of the Pacific-time day holding `now`."""
    local = datetime.fromtimestamp(now, PACIFIC)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=1, hours=3)).replace(hour=0)  # the next midnight, across DST changes
    return int(start.timestamp()), int(end.timestamp())


@dataclass(frozen=True)
class Violation:
    metric: str
    model: str
    limit: int
    retry_seconds: float  # until the violated window ends


class RateLimited(ResourceExhausted):
    """429 with Gemini's QuotaFailure and RetryInfo details (rendered by pollux.api.errors)."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        self.retry_seconds = max(v.retry_seconds for v in violations)
        lines = "".join(f"\n* Quota exceeded for metric: {QUOTAS[v.metric][0]}, limit: {v.limit}, model: {v.model}"
                        for v in violations)
        super().__init__("You exceeded your current quota, please check your plan and billing details. For more "
                         f"information on this error, head to: {DOCS}.{lines}\n"
                         f"Please retry in {self.retry_seconds:.3f}s.")


class RateLimiter:
    def __init__(self, store: LimitStore, settings: "Settings"):
        self.store = store
        self.window = settings.rate_limit_window_seconds
        self.refresh = settings.rate_limit_refresh_seconds
        self._limits: dict[tuple[str, str], Limits] = {}
        self._loaded = -math.inf
        self._lock = threading.Lock()

    def limits_for(self, project: str, model: str) -> Limits | None:
        now = time.monotonic()
        if now - self._loaded > self.refresh:
            with self._lock:
                if now - self._loaded > self.refresh:
                    self._limits = {(lim.project, lim.model): lim for lim in self.store.all_limits()}
                    self._loaded = now
        return self._limits.get((project, model)) or self._limits.get((project, ANY_MODEL))

    def charges(self, limits: Limits, tokens: int, now: float) -> tuple[list[Charge], dict[str, float]]:
        """The buckets this request adds to, and when each bucket's window ends."""
        minute = int(now // self.window * self.window)
        day_start, day_end = day_window(now)
        windows = {"rpm": (minute, minute + self.window), "tpm": (minute, minute + self.window),
                   "rpd": (day_start, day_end)}
        amounts = {"rpm": 1, "tpm": tokens, "rpd": 1}
        out = [Charge(m, windows[m][0], amounts[m], cap) for m in ("rpm", "tpm", "rpd")
               if (cap := limits.get(m)) is not None]
        return out, {m: windows[m][1] for m in windows}

    def check(self, project: str, model: str, tokens: int) -> None:
        """Charge one generate request of `tokens` input tokens, or raise RateLimited (nothing charged)."""
        model = model.removeprefix("models/")
        limits = self.limits_for(project, model)
        if limits is None:
            return
        now = time.time()
        charges, ends = self.charges(limits, tokens, now)
        over = self.store.consume(project, model, charges)
        if over:
            log.info("rate limited: project %s, model %s, over %s", project, model, ", ".join(sorted(over)))
            raise RateLimited([Violation(m, model, cap, max(0.001, ends[m] - now)) for m in QUOTAS
                               if m in over and (cap := limits.get(m)) is not None])

    async def admit(self, project: str, job) -> None:
        """The hook the generate routes call once the prompt is counted (a generation.Job). A project without
        limits, known from a fresh read of the table, costs no thread hop."""
        model = job.model.requested.removeprefix("models/")
        if time.monotonic() - self._loaded <= self.refresh and self.limits_for(project, model) is None:
            return
        await run_in_threadpool(self.check, project, job.model.requested, job.usage.prompt_tokens)

    def sweep(self) -> int:
        """Forget buckets older than the longest window (a day and a bit)."""
        return self.store.sweep(int(time.time()) - 2 * 86400)
