"""Constrained decoding with lm-format-enforcer: responseSchema (JSON Schema) and text/x.enum.

The tokenizer analysis is the expensive part (a pass over the vocabulary), so it is built once per
tokenizer and reused by every request.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any

from pollux.errors import InvalidArgument

_tokenizer_data: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def tokenizer_data(tokenizer: Any, eos_token_ids: list[int]) -> Any:
    """lm-format-enforcer's view of a tokenizer, ending only on the model's own end tokens."""
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

    with _lock:
        data = _tokenizer_data.get(tokenizer)
        if data is None:
            base = build_token_enforcer_tokenizer_data(tokenizer)
            data = TokenEnforcerTokenizerData(base.regular_tokens, base.decoder, list(eos_token_ids),
                                              base.use_bitmask, base.vocab_size)
            _tokenizer_data[tokenizer] = data
        return data


def enum_values(schema: dict | None) -> list[str]:
    values = (schema or {}).get("enum")
    if not values:
        raise InvalidArgument("responseMimeType text/x.enum needs a responseSchema with an enum.")
    return [str(v) for v in values]


def parser_for(response_mime_type: str, schema: dict | None) -> Any | None:
    """The character-level parser a response format needs; None for free text."""
    from lmformatenforcer import JsonSchemaParser, RegexParser

    if response_mime_type == "application/json":
        try:
            return JsonSchemaParser(schema)  # None: any JSON value
        except Exception as e:  # the library rejects schemas it cannot enforce
            raise InvalidArgument(f"responseSchema cannot be enforced: {e}") from None
    if response_mime_type == "text/x.enum":
        return RegexParser("(" + "|".join(re.escape(v) for v in enum_values(schema)) + ")")
    return None


def logits_processor(tokenizer: Any, eos_token_ids: list[int], response_mime_type: str,
                     schema: dict | None) -> Any | None:
    """A transformers LogitsProcessor that masks every token the format does not allow next."""
    parser = parser_for(response_mime_type, schema)
    if parser is None:
        return None
    from lmformatenforcer.integrations.transformers import build_transformers_prefix_allowed_tokens_fn
    from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor

    allowed = build_transformers_prefix_allowed_tokens_fn(tokenizer_data(tokenizer, eos_token_ids), parser)
    return PrefixConstrainedLogitsProcessor(allowed, num_beams=1)
