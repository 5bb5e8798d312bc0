"""responseLogprobs on the wire: a candidate's token log probabilities as Gemini's `logprobsResult`
(`chosenCandidates`, `topCandidates`, `logProbabilitySum`) and `avgLogprobs`."""

from __future__ import annotations

from pollux.engines.base import Delta, TokenLogprob


def _token(token: str, logprob: float) -> dict:
    return {"token": token, "logProbability": logprob}


def logprobs_json(tokens: list[TokenLogprob] | None, top: int | None, average: bool = True) -> dict:
    """The fields a candidate gains; none when the engine sent no log probabilities. `topCandidates` only
    when `logprobs` (the number of alternatives) was asked for, as Gemini does."""
    if not tokens:
        return {}
    result: dict = {"chosenCandidates": [_token(t.token, t.logprob) for t in tokens]}
    if top:
        result["topCandidates"] = [{"candidates": [_token(tok, lp) for tok, lp in t.top[:top]]} for t in tokens]
    total = sum(t.logprob for t in tokens)
    result["logProbabilitySum"] = total
    out: dict = {"logprobsResult": result}
    if average:
        out["avgLogprobs"] = total / len(tokens)
    return out


def stream_logprobs(delta: Delta, so_far: list[list[TokenLogprob]], top: int | None) -> dict:
    """A streamed chunk carries its own tokens' logprobs; a candidate's last chunk adds its `avgLogprobs`."""
    out = logprobs_json(delta.logprobs, top, average=False)
    tokens = so_far[delta.candidate]
    if delta.finish_reason and tokens:
        out["avgLogprobs"] = sum(t.logprob for t in tokens) / len(tokens)
    return out
