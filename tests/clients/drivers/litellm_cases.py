"""LiteLLM's `gemini/` provider (its docs' completion calls), pointed at Pollux with `api_base`."""

import base64
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the cost map from the internet

import litellm  # noqa: E402

from harness import Context, run  # noqa: E402

MODEL = "gemini/gemini-3-flash-preview"  # LiteLLM's docs example


def _kw(ctx: Context) -> dict:
    # LiteLLM appends `models/{model}:generateContent` to api_base, so the API version is part of it.
    return {"model": MODEL, "api_base": f"{ctx.base_url}/v1beta", "api_key": ctx.key}


def _usage(u) -> dict:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens} if u else {}


def completion(ctx):
    r = litellm.completion(messages=[{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Write a short poem about the sea."}], **_kw(ctx))
    return {"text": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
            "usage": _usage(r.usage)}


def streaming(ctx):
    chunks = list(litellm.completion(messages=[{"role": "user", "content": "Count to three."}], stream=True,
                                     stream_options={"include_usage": True}, **_kw(ctx)))
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    usage = next((c.usage for c in reversed(chunks) if getattr(c, "usage", None)), None)
    return {"chunks": len(chunks), "text": text, "usage": _usage(usage)}


def image(ctx):
    data = base64.b64encode((ctx.media / "boxes.png").read_bytes()).decode()
    r = litellm.completion(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
    ]}], **_kw(ctx))
    return {"text": r.choices[0].message.content, "usage": _usage(r.usage)}


def json_schema(ctx):
    from pydantic import BaseModel

    class Recipe(BaseModel):
        name: str
        ingredients: list[str]

    r = litellm.completion(messages=[{"role": "user", "content": "Give me a cookie recipe."}], response_format=Recipe,
                           **_kw(ctx))
    return {"value": Recipe.model_validate_json(r.choices[0].message.content).model_dump()}


if __name__ == "__main__":
    run({f.__name__: f for f in (completion, streaming, image, json_schema)})
