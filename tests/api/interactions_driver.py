"""User code for `client.interactions`, run in the interpreter of one google-genai release (the project's
pinned one, and the client suite's newer one) by tests/api/test_interactions.py, through the client
suite's harness. Usage: python interactions_driver.py BASE_URL MEDIA_DIR OUT_JSON
"""

from __future__ import annotations

import base64

from harness import Context, run


def _client(ctx: Context):
    """One client for the run: held, since a collected `genai.Client` closes its HTTP connection pool."""
    from google import genai
    from google.genai import types

    if "client" not in ctx.shared:
        ctx.shared["client"] = genai.Client(api_key=ctx.key, http_options=types.HttpOptions(
            base_url=ctx.base_url, api_version="v1beta"))
    return ctx.shared["client"]


def _status(call) -> int | None:
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the SDK's status error is what we observe
        return getattr(e, "status_code", None)
    return None


def case_text(ctx: Context) -> dict:
    from google.genai import version

    it = _client(ctx).interactions.create(model="gemini-2.5-flash", input="Hello there", system_instruction="Terse.")
    return {"sdk": version.__version__, "status": it.status, "output_text": it.output_text,
            "last_step_text": it.steps[-1].content[0].text, "total_tokens": it.usage.total_tokens}


def case_stream(ctx: Context) -> dict:
    events = list(_client(ctx).interactions.create(model="gemini-2.5-flash", input="Hello there", stream=True,
                                                   system_instruction="Terse."))
    return {"kinds": [e.event_type for e in events],
            "text": "".join(e.delta.text for e in events if e.event_type == "step.delta"),
            "final_status": events[-1].interaction.status}


def case_images(ctx: Context) -> dict:
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "red.png"))
    by_uri = client.interactions.create(model="gemini-2.5-flash", input=[
        {"type": "image", "uri": f.uri, "mime_type": "image/png"}, {"type": "text", "text": "What is it?"}])
    inline = client.interactions.create(model="gemini-3-flash-preview", input=[
        {"type": "image", "data": base64.b64encode((ctx.media / "red.png").read_bytes()).decode(),
         "mime_type": "image/png", "resolution": "low"}, {"type": "text", "text": "What is it?"}])
    return {"file": f.name, "by_uri": by_uri.output_text, "inline": inline.output_text,
            "inline_tokens": {m.modality: m.tokens for m in inline.usage.input_tokens_by_modality}}


def case_conversation(ctx: Context) -> dict:
    client = _client(ctx)
    first = client.interactions.create(model="gemini-2.5-flash", input="My name is Ada.")
    second = client.interactions.create(model="gemini-2.5-flash", input="What is my name?",
                                        previous_interaction_id=first.id)
    got = client.interactions.get(second.id)
    client.interactions.delete(second.id)
    off = client.interactions.create(model="gemini-2.5-flash", input="Off the record.", store=False)
    return {"second": second.output_text, "got_steps": [s.type for s in got.steps],
            "got_text": got.output_text, "deleted_get": _status(lambda: client.interactions.get(second.id)),
            "unstored_get": _status(lambda: client.interactions.get(off.id)),
            "tools": _status(lambda: client.interactions.create(model="gemini-2.5-flash", input="x",
                                                                tools=[{"type": "google_search"}]))}


if __name__ == "__main__":
    run({name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")})
