"""LlamaIndex's GoogleGenAI LLM as its docs use it, pointed at Pollux with `http_options`.

Its constructor calls models.get for the model (its default, gemini-3.7-flash, unless named) to
size the context window, so construction itself is a case.
"""

from google.genai import types
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.llms.google_genai import GoogleGenAI
from llama_index.llms.google_genai.base import DEFAULT_MODEL

from harness import Context, run


def _llm(ctx: Context, **kw) -> GoogleGenAI:
    return GoogleGenAI(api_key=ctx.key, http_options=types.HttpOptions(base_url=ctx.base_url), **kw)


def construct(ctx):
    llm = _llm(ctx)
    ctx.shared["llm"] = llm
    meta = llm.metadata
    return {"default_model": DEFAULT_MODEL, "model": llm.model, "context_window": meta.context_window,
            "num_output": meta.num_output}


def complete(ctx):
    r = ctx.shared["llm"].complete("Paul Graham is ")
    return {"text": r.text, "usage": {k: r.additional_kwargs.get(k) for k in ("prompt_tokens", "completion_tokens",
                                                                               "total_tokens")}}


def stream_complete(ctx):
    chunks = list(ctx.shared["llm"].stream_complete("Tell me a short story about a lighthouse."))
    return {"chunks": len(chunks), "text": chunks[-1].text, "deltas": "".join(c.delta or "" for c in chunks)}


def chat_image(ctx):
    msg = ChatMessage(role="user", blocks=[ImageBlock(path=ctx.media / "boxes.png"),
                                           TextBlock(text="Describe the image in a few sentences.")])
    r = ctx.shared["llm"].chat([msg])
    return {"text": r.message.content, "usage": {k: r.additional_kwargs.get(k) for k in ("prompt_tokens",
                                                                                           "total_tokens")}}


def structured_predict(ctx):
    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class Song(BaseModel):
        name: str
        artist: str

    r = ctx.shared["llm"].structured_predict(Song, PromptTemplate("Generate a song about {topic}"), topic="the sea")
    return {"type": type(r).__name__, "value": r.model_dump()}


def chat_image_via_file_api(ctx):
    """file_mode='fileapi': the image goes up through the Files API, is used, then deleted."""
    llm = _llm(ctx, file_mode="fileapi")
    msg = ChatMessage(role="user", blocks=[ImageBlock(path=ctx.media / "boxes.png"), TextBlock(text="Describe it.")])
    r = llm.chat([msg])
    return {"text": r.message.content}


if __name__ == "__main__":
    run({f.__name__: f for f in (construct, complete, stream_complete, chat_image, structured_predict,
                                 chat_image_via_file_api)})
