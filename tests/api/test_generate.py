import base64
import json

import pytest

from tests.api.helpers import assert_error, upload
from tests.conftest import H, png_bytes

URL = "/v1beta/models/gemini-2.0-flash"


def _inline(data: bytes, mime="image/png", snake=False) -> dict:
    if snake:
        return {"inline_data": {"mime_type": mime, "data": base64.b64encode(data).decode()}}
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def _gen(client, body, verb="generateContent", query=""):
    return client.post(f"{URL}:{verb}{query}", headers=H, json=body)


def test_text_only_answer_and_usage(client):
    r = _gen(client, {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    cand = body["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["index"] == 0
    assert "text: Hello there" in cand["content"]["parts"][0]["text"]
    usage = body["usageMetadata"]
    assert usage["promptTokenCount"] == 3  # ceil(11 / 4)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert body["modelVersion"] == "gemini-2.0-flash"
    assert r.headers["x-pollux-native-prompt-tokens"]


def test_inline_image_then_file_image_in_order(client):
    f = upload(client, png_bytes(16, 16))
    body = {"contents": [{"parts": [_inline(png_bytes(8, 8), snake=True), {"text": "Compare."},
                                    {"fileData": {"fileUri": f["uri"], "mimeType": "image/png"}}]}],
            "systemInstruction": {"role": "system", "parts": [{"text": "Be terse."}]}}
    text = _gen(client, body).json()["candidates"][0]["content"]["parts"][0]["text"]
    lines = text.splitlines()
    assert "system: Be terse." in lines
    i_inline = next(i for i, line in enumerate(lines) if "image 768x768 (original 8x8)" in line)
    i_text = lines.index("  text: Compare.")
    i_file = next(i for i, line in enumerate(lines) if f"from {f['name']}" in line)
    assert i_inline < i_text < i_file


@pytest.mark.parametrize("uri_form", ["{uri}", "{name}", "https://generativelanguage.googleapis.com/v1beta/{name}",
                                      "https://generativelanguage.googleapis.com/v1/{name}"])
def test_file_uri_forms(client, uri_form):
    f = upload(client, png_bytes())
    uri = uri_form.format(uri=f["uri"], name=f["name"])
    r = _gen(client, {"contents": [{"parts": [{"fileData": {"fileUri": uri}}, {"text": "hi"}]}]})
    assert r.status_code == 200, r.text


def test_usage_counts_images_by_profile(client):
    big = png_bytes(1000, 800)
    body = {"contents": [{"parts": [_inline(big), {"text": "hi"}]}]}
    r2 = client.post("/v1beta/models/gemini-2.0-flash:countTokens", headers=H, json=body).json()
    r15 = client.post("/v1beta/models/gemini-1.5-flash:countTokens", headers=H, json=body).json()
    details2 = {d["modality"]: d["tokenCount"] for d in r2["promptTokensDetails"]}
    details15 = {d["modality"]: d["tokenCount"] for d in r15["promptTokensDetails"]}
    assert details2["IMAGE"] == 4 * 258  # ceil(1000/768) * ceil(800/768) tiles
    assert details15["IMAGE"] == 258
    assert r2["totalTokens"] == details2["IMAGE"] + details2["TEXT"]
    gen = _gen(client, body).json()["usageMetadata"]
    assert gen["promptTokenCount"] == r2["totalTokens"]


def test_count_tokens_both_body_shapes(client):
    contents = [{"parts": [{"text": "abcdefgh"}]}]
    a = client.post(f"{URL}:countTokens", headers=H, json={"contents": contents}).json()
    b = client.post(f"{URL}:countTokens", headers=H, json={"generateContentRequest": {
        "model": "models/gemini-2.0-flash", "contents": contents}}).json()
    assert a == b and a["totalTokens"] == 2


def test_sse_stream_has_several_chunks_and_finish_last(client):
    body = {"contents": [{"parts": [_inline(png_bytes()), {"text": "Describe."}]}]}
    with client.stream("POST", f"{URL}:streamGenerateContent?alt=sse", headers=H, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = [json.loads(e[len("data: "):]) for e in raw.split("\r\n\r\n") if e.strip()]
    assert len(events) >= 3
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "candidatesTokenCount" in events[-1]["usageMetadata"]
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == _gen(client, body).json()["candidates"][0]["content"]["parts"][0]["text"]


def test_json_array_stream(client):
    body = {"contents": [{"parts": [{"text": "one\ntwo"}]}]}
    r = client.post(f"{URL}:streamGenerateContent", headers=H, json=body)
    chunks = json.loads(r.text)
    assert isinstance(chunks, list) and len(chunks) >= 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_generation_config_max_tokens_stop_and_candidates(client):
    contents = [{"parts": [{"text": "x" * 400}]}]
    r = _gen(client, {"contents": contents, "generationConfig": {"maxOutputTokens": 5}}).json()
    assert r["candidates"][0]["finishReason"] == "MAX_TOKENS"
    r = _gen(client, {"contents": [{"parts": [{"text": "before STOP after"}]}],
                      "generation_config": {"stop_sequences": ["STOP"], "top_k": 20.0, "candidate_count": 2}}).json()
    assert len(r["candidates"]) == 2
    assert all("after" not in c["content"]["parts"][0]["text"] for c in r["candidates"])


def test_json_schema_output(client):
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "count": {"type": "INTEGER"}},
              "required": ["name", "count"]}
    r = _gen(client, {"contents": [{"parts": [{"text": "Give JSON"}]}],
                      "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}})
    data = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert set(data) == {"name", "count"} and isinstance(data["count"], int)


def test_emulator_boxes_find_the_drawn_object(client):
    from PIL import Image, ImageDraw
    import io

    im = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(im).rectangle([100, 50, 199, 149], fill="red")  # x 100-199, y 50-149
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    body = {"contents": [{"parts": [_inline(buf.getvalue()),
                                    {"text": "Return a bounding box for the red square. [ymin, xmin, ymax, xmax]"}]}],
            "generationConfig": {"responseMimeType": "application/json"}}
    boxes = json.loads(_gen(client, body).json()["candidates"][0]["content"]["parts"][0]["text"])
    assert boxes[0]["label"] == "red square"
    ymin, xmin, ymax, xmax = boxes[0]["box_2d"]
    assert abs(ymin - 250) <= 5 and abs(xmin - 250) <= 5 and abs(ymax - 750) <= 5 and abs(xmax - 500) <= 5


def test_legacy_enum_numbers_and_camel_or_snake(client):
    body = {"contents": [{"parts": [{"text": "hi"}]}],
            "safetySettings": [{"category": 7, "threshold": 3}],
            "generation_config": {"temperature": 0.2, "topP": 0.9, "speechConfig": {}, "thinking_config": {}}}
    assert _gen(client, body).status_code == 200  # fields of Gemini's schema are accepted, honoured or not


@pytest.mark.parametrize("body,contains", [
    ({}, "contents"),
    ({"contents": [{"parts": []}]}, "parts"),
    ({"contents": [{"role": "wizard", "parts": [{"text": "x"}]}]}, "role"),
    ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}}, "temperature"),
    ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "text/html"}}, "text/html"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@@"}}]}]}, "base64"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "AAAA"}}]}]}, "pdf"),
    ({"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}, "not supported"),
    ({"contents": "nope"}, "contents"),
])
def test_bad_requests_are_invalid_argument(client, body, contains):
    assert_error(_gen(client, body), 400, "INVALID_ARGUMENT", contains)


def test_malformed_json(client):
    r = client.post(f"{URL}:generateContent", headers={**H, "Content-Type": "application/json"}, content=b"{nope")
    assert_error(r, 400, "INVALID_ARGUMENT", "Invalid JSON")


def test_oversize_inline_body(make_client):
    client = make_client(max_inline_bytes=1000)
    body = {"contents": [{"parts": [_inline(png_bytes(64, 64) + b"\0" * 2000)]}]}
    assert_error(_gen(client, body), 400, "INVALID_ARGUMENT", "exceeds the limit")


def test_missing_and_processing_files(client):
    from tests.conftest import ctx_of

    r = _gen(client, {"contents": [{"parts": [{"fileData": {"fileUri": "files/doesnotexist"}}]}]})
    assert_error(r, 403, "PERMISSION_DENIED")
    f = upload(client, png_bytes())
    store = ctx_of(client).files.store
    store.update_file(f["name"][6:], state="PROCESSING")
    r = _gen(client, {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}]}]})
    assert r.status_code == 200, r.text  # an image is decoded at upload: PROCESSING only means features pending
    store.update_file(f["name"][6:], mime_type="video/mp4")  # a video still being decoded is not usable yet
    r = _gen(client, {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}]}]})
    assert_error(r, 400, "FAILED_PRECONDITION", "not in an ACTIVE state")
    store.update_file(f["name"][6:], state="FAILED", error={"code": 3, "message": "The file could not be processed"})
    r = _gen(client, {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}]}]})
    assert_error(r, 400, "FAILED_PRECONDITION", "could not be processed")


def test_over_the_context_limit(client):
    from tests.conftest import ctx_of

    ctx = ctx_of(client)
    entry = ctx.catalog.resolve("gemini-2.0-flash").entry
    r = _gen(client, {"contents": [{"parts": [{"text": "x" * (entry.input_token_limit * 4 + 40)}]}]})
    err = assert_error(r, 400, "INVALID_ARGUMENT", "exceeds the maximum")
    assert str(entry.input_token_limit) in err["message"]


def test_missing_weights_name_pollux_pull_and_server_stays_up(make_client, tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "absent"\ndisplay_name = "Absent"\ndescription = "no weights"\n'
                       'engine = "transformers"\nsource = "pollux-tests/not-a-real-repo"\nfamily = "smolvlm"\n')
    client = make_client(emulator=False, models_dir=tmp_path / "no-models", catalog_file=catalog)
    r = client.post("/v1beta/models/absent:generateContent", headers=H, json={"contents": [{"parts": [{"text": "hi"}]}]})
    err = assert_error(r, 400, "FAILED_PRECONDITION", "pollux pull")
    assert "Traceback" not in err["message"]
    assert client.get("/v1beta/models", headers=H).status_code == 200


def test_inline_parts_are_told_apart(client):
    body = {"contents": [{"parts": [_inline(png_bytes(8, 8)), _inline(png_bytes(9, 9)), {"text": "x"},
                                    _inline(png_bytes(10, 10))]}]}
    text = _gen(client, body).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert "original 8x8) from inline[0]" in text
    assert "original 9x9) from inline[1]" in text
    assert "original 10x10) from inline[3]" in text


def test_every_endpoint_reports_the_same_counts(client):
    """generateContent, its stream and countTokens report one computation (media/tokens.py) the same way."""
    image = _inline(png_bytes(8, 8))
    url = URL
    only_image = {"contents": [{"parts": [image]}]}
    counted = client.post(f"{url}:countTokens", headers=H, json=only_image).json()
    assert counted == {"totalTokens": 258, "promptTokensDetails": [{"modality": "IMAGE", "tokenCount": 258}]}
    both = {"contents": [{"parts": [image, {"text": "What is this?"}]}]}
    counted = client.post(f"{url}:countTokens", headers=H, json=both).json()
    generated = client.post(f"{url}:generateContent", headers=H, json=both).json()["usageMetadata"]
    streamed = client.post(f"{url}:streamGenerateContent", headers=H, json=both).json()[-1]["usageMetadata"]
    details = [{"modality": "TEXT", "tokenCount": 4}, {"modality": "IMAGE", "tokenCount": 258}]
    assert counted["promptTokensDetails"] == generated["promptTokensDetails"] == streamed["promptTokensDetails"] \
        == details
    assert counted["totalTokens"] == generated["promptTokenCount"] == streamed["promptTokenCount"] == 262
