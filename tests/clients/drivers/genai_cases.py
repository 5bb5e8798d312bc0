"""google-genai as the Gemini docs and cookbook use it, with only the base URL and key changed."""

import json

from google import genai
from google.genai import errors, types

from harness import Context, run, wait_active

MODEL = "gemini-3.5-flash"  # the API reference's and cookbook's default today
CURRENT_NAMES = ("gemini-3.5-flash", "gemini-flash-latest", "gemini-3-flash-preview")


def _client(ctx: Context) -> genai.Client:
    """One client for the whole program, as user code keeps it (a dropped Client closes its transport)."""
    if "client" not in ctx.shared:
        ctx.shared["client"] = genai.Client(api_key=ctx.key, http_options=types.HttpOptions(base_url=ctx.base_url))
    return ctx.shared["client"]


def _state(f) -> str:
    return getattr(f.state, "value", str(f.state))


def _file(f) -> dict:
    return {"name": f.name, "display_name": f.display_name, "mime_type": f.mime_type, "uri": f.uri,
            "size_bytes": f.size_bytes, "state": _state(f)}


def _usage(r) -> dict:
    u = r.usage_metadata
    return {"prompt_tokens": u.prompt_token_count, "output_tokens": u.candidates_token_count,
            "total_tokens": u.total_token_count} if u else {}


def version(ctx):
    from google.genai import version as v

    return {"version": v.__version__}


def files_upload(ctx):
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "boxes.png"), config={"display_name": "socks photo"})
    ctx.shared["image"] = f
    return _file(f)


def files_get(ctx):
    f = _client(ctx).files.get(name=ctx.shared["image"].name)
    return _file(f)


def files_list(ctx):
    return {"names": [f.name for f in _client(ctx).files.list(config={"page_size": 10})]}


def generate_image(ctx):
    r = _client(ctx).models.generate_content(model=MODEL, contents=[ctx.shared["image"], "Describe this image."])
    return {"text": r.text, "usage": _usage(r), "model_version": r.model_version}


def generate_audio(ctx):
    """The Audio notebook: upload, then use the file at once."""
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "sample.mp3"))
    r = client.models.generate_content(model=MODEL, contents=["Describe this audio clip", f])
    return {"file": _file(f), "text": r.text, "usage": _usage(r)}


def generate_inline_audio(ctx):
    """The Audio docs' inline form: the bytes in the request."""
    r = _client(ctx).models.generate_content(model=MODEL, contents=[
        "Describe this audio clip", types.Part.from_bytes(data=(ctx.media / "sample.mp3").read_bytes(),
                                                          mime_type="audio/mp3")])
    return {"text": r.text, "usage": _usage(r)}


def count_tokens_audio(ctx):
    """The Counting_Tokens notebook: count an audio file straight after its upload."""
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "sample.mp3"))
    return {"total_tokens": client.models.count_tokens(model=MODEL, contents=[f]).total_tokens}


def generate_video(ctx):
    """The Video notebook: upload, poll files.get until ACTIVE, then ask."""
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "sample.mp4"))
    f = wait_active(lambda: client.files.get(name=f.name), _state)
    r = client.models.generate_content(model=MODEL, contents=[f, "Summarize this video."])
    ctx.shared["video"] = f
    return {"file": _file(f), "text": r.text, "usage": _usage(r)}


def generate_stream(ctx):
    chunks = list(_client(ctx).models.generate_content_stream(
        model=MODEL, contents=[ctx.shared["image"], "Describe this image."]))
    return {"chunks": len(chunks), "text": "".join(c.text or "" for c in chunks), "usage": _usage(chunks[-1])}


def count_tokens(ctx):
    client = _client(ctx)
    text = client.models.count_tokens(model=MODEL, contents="What is the capital of France?")
    image = client.models.count_tokens(model=MODEL, contents=[ctx.shared["image"], "Describe this image."])
    return {"text_tokens": text.total_tokens, "image_tokens": image.total_tokens}


def models_get(ctx):
    client = _client(ctx)
    out = {}
    for name in CURRENT_NAMES:
        try:
            m = client.models.get(model=name)
            out[name] = {"name": m.name, "input_token_limit": m.input_token_limit,
                         "output_token_limit": m.output_token_limit, "supported_actions": m.supported_actions}
        except errors.APIError as e:
            out[name] = {"error": f"{e.code} {e.status}: {e.message}"}
    return {"models": out}


def json_schema(ctx):
    """The structured-output docs: a Pydantic schema, read back through response.parsed."""
    from pydantic import BaseModel

    class Recipe(BaseModel):
        recipe_name: str
        ingredients: list[str]

    r = _client(ctx).models.generate_content(
        model=MODEL, contents="List a few popular cookie recipes, and include the amounts of ingredients.",
        config={"response_mime_type": "application/json", "response_schema": list[Recipe]})
    return {"parsed": [x.model_dump() for x in r.parsed], "usage": _usage(r)}


def unsupported_modality_is_400(ctx):
    """Code that asks for an image answer and falls back on Gemini's 400 when a model cannot give one."""
    try:
        r = _client(ctx).models.generate_content(model=MODEL, contents="Draw a cat.",
                                                 config={"response_modalities": ["IMAGE"]})
        return {"answer": r.text}
    except errors.APIError as e:
        return {"error_code": e.code, "error_status": e.status, "message": e.message}


def long_video_fits(ctx):
    """A client that checks count_tokens against models.get's inputTokenLimit before sending."""
    client = _client(ctx)
    f = client.files.upload(file=str(ctx.media / "long.mp4"))
    f = wait_active(lambda: client.files.get(name=f.name), _state, timeout=120)
    count = client.models.count_tokens(model=MODEL, contents=[f, "Summarize this video."]).total_tokens
    limit = client.models.get(model=MODEL).input_token_limit
    client.files.delete(name=f.name)
    return {"state": _state(f), "count": count, "input_token_limit": limit}


def parse_json(json_output: str) -> str:
    """The Spatial understanding notebook's parser, as it is."""
    lines = json_output.splitlines()
    for i, line in enumerate(lines):
        if line == "```json":
            json_output = "\n".join(lines[i + 1:])
            json_output = json_output.split("```")[0]
            break
    return json_output


BOX_SYSTEM = """
    Return bounding boxes as a JSON array with labels. Never return masks or code fencing. Limit to 25 objects.
    If an object is present multiple times, name them according to their unique characteristic (colors, size, position, unique characteristics, etc..).
      """


def boxes_system_instruction(ctx):
    """The Spatial understanding notebook: box instructions in system_instruction, the ask in the prompt."""
    from PIL import Image

    im = Image.open(ctx.media / "boxes.png")
    im.thumbnail([1024, 1024], Image.Resampling.LANCZOS)
    r = _client(ctx).models.generate_content(
        model=MODEL, contents=["Show me the positions of the socks with the face", im],
        config=types.GenerateContentConfig(system_instruction=BOX_SYSTEM, temperature=0.5))
    boxes = json.loads(parse_json(r.text))
    width, height = im.size
    drawn = []
    for b in boxes:  # the notebook's plot_bounding_boxes arithmetic
        y1, x1, y2, x2 = (int(b["box_2d"][0] / 1000 * height), int(b["box_2d"][1] / 1000 * width),
                          int(b["box_2d"][2] / 1000 * height), int(b["box_2d"][3] / 1000 * width))
        drawn.append({"label": b.get("label"), "pixels": [x1, y1, x2, y2]})
    return {"text": r.text, "boxes": drawn}


def files_delete(ctx):
    client = _client(ctx)
    name = ctx.shared["image"].name
    client.files.delete(name=name)
    try:
        client.files.get(name=name)
        after = "still there"
    except errors.APIError as e:
        after = f"{e.code} {e.status}"
    return {"after_delete": after}


if __name__ == "__main__":
    run({f.__name__: f for f in (version, files_upload, files_get, files_list, generate_image, generate_audio,
                                 generate_inline_audio, count_tokens_audio, generate_video, generate_stream, count_tokens, models_get,
                                 json_schema, unsupported_modality_is_400, long_video_fits,
                                 boxes_system_instruction, files_delete)})
