"""LangChain's ChatGoogleGenerativeAI as its docs use it, pointed at Pollux with `base_url`."""

import base64

from langchain_core.messages import HumanMessage
from langchain_google_genai import ChatGoogleGenerativeAI

from harness import Context, run

MODEL = "gemini-3.5-flash"  # the package's docs default


def _llm(ctx: Context) -> ChatGoogleGenerativeAI:
    if "llm" not in ctx.shared:
        ctx.shared["llm"] = ChatGoogleGenerativeAI(model=MODEL, google_api_key=ctx.key, base_url=ctx.base_url)
    return ctx.shared["llm"]


def _usage(msg) -> dict:
    return dict(msg.usage_metadata or {})


def invoke(ctx):
    msg = _llm(ctx).invoke([("system", "You are a helpful assistant."), ("human", "Say hello in French.")])
    return {"text": msg.text, "usage": _usage(msg), "model": msg.response_metadata.get("model_name")}


def stream(ctx):
    chunks = list(_llm(ctx).stream("Write a haiku about the sea."))
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c  # LangChain's own chunk merging
    return {"chunks": len(chunks), "text": total.text, "usage": _usage(total)}


def image_message(ctx):
    data = base64.b64encode((ctx.media / "boxes.png").read_bytes()).decode()
    msg = _llm(ctx).invoke([HumanMessage(content=[
        {"type": "text", "text": "Describe this image."},
        {"type": "image", "base64": data, "mime_type": "image/png"},
    ])])
    return {"text": msg.text, "usage": _usage(msg)}


def structured_output(ctx):
    from pydantic import BaseModel

    class Recipe(BaseModel):
        name: str
        ingredients: list[str]

    r = _llm(ctx).with_structured_output(Recipe).invoke("Give me a cookie recipe.")
    return {"type": type(r).__name__, "value": r.model_dump()}


def uploaded_file_message(ctx):
    """An upload through the model's own google-genai client, then a `file` block with its uri."""
    llm = _llm(ctx)
    f = llm.client.files.upload(file=str(ctx.media / "boxes.png"))
    msg = llm.invoke([HumanMessage(content=[
        {"type": "text", "text": "What is in this file?"},
        {"type": "file", "file_id": f.uri, "mime_type": "image/png"},
    ])])
    llm.client.files.delete(name=f.name)
    return {"text": msg.text, "usage": _usage(msg)}


if __name__ == "__main__":
    run({f.__name__: f for f in (invoke, stream, image_message, structured_output, uploaded_file_message)})
