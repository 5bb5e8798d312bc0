"""What differs between OpenAI-compatible servers, as far as Pollux's requests go.

They all take `/v1/chat/completions` with image_url data URLs and SSE streaming; they differ in the
sampling fields they read, in how a JSON schema constrains the answer, in `n`, and in their tokenizer
endpoint. A dialect is named in the catalog (`options.dialect`) or recognised from the server's
`/v1/models` (`owned_by`) or its `Server` header; unknown servers get plain OpenAI ("openai").

Sources (each server's documentation and code; only vLLM is run against here, the others are exercised
against tests/fixtures/openai_servers.py's DialectServer, which plays these rules):
* vLLM: every field, `response_format` json_schema (guided decoding), `/tokenize` with chat messages.
* SGLang: the same request fields; `/tokenize` takes a `prompt` string (text only).
* Ollama (/v1): no `n`, no `top_k` (its OpenAI layer reads neither); `response_format` json_schema is
  turned into its native `format` by the server; no tokenizer endpoint.
* llama.cpp `llama-server`: no `n` (refused: "Only one completion choice is allowed"); the schema as the
  top-level `json_schema` field (what every version reads); `/tokenize` takes `content`, and
  `/apply-template` renders chat messages, so text counts are exact.
* LM Studio: no `n`; `response_format` must be json_schema ("json_object" is refused), so JSON mode
  without a schema sends an open object schema; no logprobs; no tokenizer endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from pollux.errors import InvalidArgument


@dataclass(frozen=True)
class Dialect:
    name: str
    unsupported: frozenset[str] = frozenset()  # request fields the server ignores or refuses: not sent
    n: bool = True  # several choices per request (candidateCount)
    schema: str = "response_format"  # "response_format" | "json_schema" (top-level, llama.cpp)
    json_object: bool = True  # response_format {"type": "json_object"} accepted
    tokenize: str | None = "messages"  # "messages" (vLLM /tokenize), "prompt" (SGLang), "content" (llama.cpp)


DIALECTS = {
    "openai": Dialect("openai"),  # the generic case (and `transformers serve`): vLLM's fields, /tokenize probed
    "vllm": Dialect("vllm"),
    "sglang": Dialect("sglang", tokenize="prompt"),
    "ollama": Dialect("ollama", unsupported=frozenset({"top_k"}), n=False, tokenize=None),
    "llamacpp": Dialect("llamacpp", n=False, schema="json_schema", tokenize="content"),
    "lmstudio": Dialect("lmstudio", unsupported=frozenset({"logprobs", "top_logprobs"}), n=False,
                        json_object=False, tokenize=None),
}

# /v1/models `owned_by` of each server's models (Ollama: the model's namespace, "library" for its own).
_OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "library": "ollama", "ollama": "ollama",
             "organization_owner": "lmstudio", "lmstudio": "lmstudio"}
_SERVER_HEADER = {"llama.cpp": "llamacpp", "ollama": "ollama", "lm studio": "lmstudio", "sglang": "sglang"}


def named(name: str) -> Dialect:
    try:
        return DIALECTS[name.lower().replace(".", "").replace("-", "").replace(" ", "")]
    except KeyError:
        raise InvalidArgument(f"Unknown OpenAI dialect {name!r} in the catalog's options.dialect; use one of "
                              f"{', '.join(sorted(DIALECTS))}.") from None


def recognise(owned_by: str | None, server_header: str | None = None) -> Dialect:
    """The dialect a server's /v1/models answer (a model's `owned_by`) and `Server` header imply."""
    if owned_by and (name := _OWNED_BY.get(owned_by.strip().lower())):
        return DIALECTS[name]
    header = (server_header or "").lower()
    return next((DIALECTS[name] for token, name in _SERVER_HEADER.items() if token in header), DIALECTS["openai"])
