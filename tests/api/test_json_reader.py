"""The lenient JSON reader: what Google's front end accepts is accepted, everything else is a clean 400."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pollux.api.json_reader import MAX_DEPTH, loads, loads_object
from pollux.errors import InvalidArgument
from tests.api.helpers import assert_error
from tests.conftest import H, png_bytes
from tests.fixtures.server import Server


@pytest.mark.parametrize("text, expected", [
    ("{'file': {'display_name': 'x'}}", {"file": {"display_name": "x"}}),
    ("{file: {displayName: \"a b\"}}", {"file": {"displayName": "a b"}}),
    ("{'a': [1, 2,], 'b': {'c': null,},}", {"a": [1, 2], "b": {"c": None}}),
    ("{'q': 'say \"hi\"', \"s\": \"it's\", 't': 'it\\'s'}", {"q": 'say "hi"', "s": "it's", "t": "it's"}),
    ("{'u': '\\u00e9\\ud83d\\ude00\\n\\q\\v'}", {"u": "é😀\nq\x0b"}),
    ('{"raw": "line\nbreak"}', {"raw": "line\nbreak"}),
    ('{"big": 123456789012345678901234567890}', {"big": 1.2345678901234568e29}),
    ('{"n": -12, "f": 1.5e3, "t": true, "z": false}', {"n": -12, "f": 1500.0, "t": True, "z": False}),
    ("\ufeff{\"bom\": 1}", {"bom": 1}),
])
def test_accepts_what_google_accepts(text, expected):
    assert loads(text) == expected


@pytest.mark.parametrize("text, says", [
    ("[1 2]", "Expected , or ] after array value."),
    ('{"a" 1}', "Expected : between key:value pair."),
    ('{"a": 1 "b": 2}', "Expected , or } after key:value pair."),
    ('{"a": NaN}', "Unexpected token."),
    ('{"a": Infinity}', "Unexpected token."),
    ('{"a": 1e400}', "Number exceeds the range of double."),
    ('{"a": -' + "9" * 5000 + "}", "Number exceeds the range of double."),
    ('{"a": 012}', "Octal/hex numbers are not valid JSON values."),
    ('{"a": "\\uZZZZ"}', "Invalid escape sequence."),
    ("{'a': 'open", "Closing quote expected in string."),
    ('{"a": bare}', "Unexpected token."),
    ('{"a": 1}}', "Parsing terminated before end of input."),
    ('{"a": ', "Unexpected end of string."),
    ("{1: 2}", "Expected an object key or }."),
    ("[" * 100_000, "Message too deep"),
    ("[" * 100_000 + "]" * 100_000, "Message too deep"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "Message too deep"),
    (b"{\"a\": \"\xff\"}", "non UTF-8"),
])
def test_refuses_with_geminis_wording(text, says):
    with pytest.raises(InvalidArgument) as info:
        loads(text)
    assert info.value.message.startswith("Invalid JSON payload received. ")
    assert says in info.value.message


def test_error_points_at_the_spot():
    with pytest.raises(InvalidArgument) as info:
        loads('{"contents": [1 2]}')
    _, segment, caret = info.value.message.split("\n")
    assert segment[caret.index("^")] == "2"


def test_depth_limit_is_exact():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)  # strict path
    assert loads("[" * MAX_DEPTH + "'x'" + "]" * MAX_DEPTH)  # lenient path
    for text in ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "[" * (MAX_DEPTH + 1) + "'x'" + "]" * (MAX_DEPTH + 1)):
        with pytest.raises(InvalidArgument):
            loads(text)


def test_a_message_must_be_an_object():
    assert loads_object(b"  ") == {}
    for text in ("[]", "1", "'x'", "null"):
        with pytest.raises(InvalidArgument, match="Expected a JSON object"):
            loads_object(text)


# ---- every JSON body of the API goes through it ----

@pytest.mark.parametrize("verb", ["generateContent", "streamGenerateContent", "countTokens"])
def test_generate_bodies_are_read_leniently(client, verb):
    r = client.post(f"/v1beta/models/gemini-2.0-flash:{verb}", headers=H,
                    content="{contents: [{'role': 'user', parts: [{'text': 'hello there'},]}]}")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("verb", ["generateContent", "streamGenerateContent", "countTokens"])
def test_deep_nesting_is_a_400_not_a_500(client, verb):
    r = client.post(f"/v1beta/models/gemini-2.0-flash:{verb}", headers=H, content="[" * 100_000)
    assert_error(r, 400, "INVALID_ARGUMENT", "Message too deep")
    r = client.post(f"/v1beta/models/gemini-2.0-flash:{verb}", headers=H,
                    content='{"contents": [{"parts": [{"text": "x"}]}], "tools": ' + "[" * 99 + "]" * 99 + "}")
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_resumable_start_with_single_quotes_keeps_the_display_name(client):
    data = png_bytes()
    r = client.post("/upload/v1beta/files", headers={
        **H, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": "image/png",
        "Content-Type": "application/json"}, content="{'file': {'display_name': 'quoted name'}}")
    assert r.status_code == 200, r.text
    url = r.headers["x-goog-upload-url"]
    r = client.post(url[url.index("/upload/"):], headers={"X-Goog-Upload-Command": "upload, finalize",
                                                          "X-Goog-Upload-Offset": "0"}, content=data)
    assert r.json()["file"]["displayName"] == "quoted name"


def test_upload_start_metadata_errors_are_400(client):
    headers = {**H, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
               "X-Goog-Upload-Header-Content-Type": "image/png"}
    for body in ("{'file': ", "[" * 100_000, "[]", "{'file': {'display_name': 5}}"):
        r = client.post("/upload/v1beta/files", headers=headers, content=body)
        assert_error(r, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    r = client.post("/upload/v1beta/files", headers=headers, content=b"{" + b" " * (2 << 20) + b"}")
    assert_error(r, 400, "INVALID_ARGUMENT", "exceeds the limit")


def test_multipart_metadata_is_read_leniently(client):
    data = png_bytes()
    body = (b"--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{file: {'displayName': 'mp'}}\r\n"
            b"--b\r\nContent-Type: image/png\r\n\r\n" + data + b"\r\n--b--")
    r = client.post("/upload/v1beta/files?uploadType=multipart", headers={
        **H, "Content-Type": "multipart/related; boundary=b"}, content=body)
    assert r.status_code == 200, r.text
    assert r.json()["file"]["displayName"] == "mp"
    bad = body.replace(b"{file: {'displayName': 'mp'}}", b"{'file'")
    r = client.post("/upload/v1beta/files?uploadType=multipart", headers={
        **H, "Content-Type": "multipart/related; boundary=b"}, content=bad)
    assert_error(r, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")


# ---- the docs' own curl script (file-api/sample.sh), against a real server ----

SAMPLE_SH = r"""
set -eu
tmp_header_file=upload-header.tmp
NUM_BYTES=$(wc -c < "${IMG_PATH}")
DISPLAY_NAME=TEXT

# Initial resumable request defining metadata.
# The upload url is in the response headers dump them to a file.
curl "${BASE_URL}/upload/v1beta/files?key=${GOOGLE_API_KEY}" \
  -D "${tmp_header_file}" \
  -H "X-Goog-Upload-Protocol: resumable" \
  -H "X-Goog-Upload-Command: start" \
  -H "X-Goog-Upload-Header-Content-Length: ${NUM_BYTES}" \
  -H "X-Goog-Upload-Header-Content-Type: image/png" \
  -H "Content-Type: application/json" \
  -d "{'file': {'display_name': '${DISPLAY_NAME}'}}" 2> /dev/null

upload_url=$(grep -i "x-goog-upload-url: " "${tmp_header_file}" | cut -d" " -f2 | tr -d "\r")
rm "${tmp_header_file}"

# Upload the actual bytes.
curl "${upload_url}" \
  -H "Content-Length: ${NUM_BYTES}" \
  -H "X-Goog-Upload-Offset: 0" \
  -H "X-Goog-Upload-Command: upload, finalize" \
  --data-binary "@${IMG_PATH}" 2> /dev/null > file_info.json

file_uri=$(jq ".file.uri" file_info.json)
echo file_uri=$file_uri

# Now generate content using that file
curl "${BASE_URL}/v1beta/models/gemini-2.0-flash:generateContent?key=$GOOGLE_API_KEY" \
    -H 'Content-Type: application/json' \
    -X POST \
    -d '{
      "contents": [{
        "parts":[
          {"text": "Can you tell me about the instruments in this photo?"},
          {"file_data":
            {"mime_type": "image/png",
            "file_uri": '$file_uri'
        }}]
        }]
       }' 2> /dev/null > response.json

cat response.json
echo
jq ".candidates[].content.parts[].text" response.json
"""


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
                    reason="needs curl, jq and bash")
def test_docs_curl_upload_script_runs_unchanged(tmp_path):
    image = tmp_path / "image.png"
    image.write_bytes(png_bytes(64, 48))
    with Server(tmp_path / "data") as server:
        env = {"PATH": "/usr/bin:/bin", "BASE_URL": server.url, "GOOGLE_API_KEY": "test-key",
               "IMG_PATH": str(image)}
        out = subprocess.run(["bash", "-c", SAMPLE_SH], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        info = json.loads((tmp_path / "file_info.json").read_text())["file"]
        assert info["displayName"] == "TEXT" and info["state"] == "ACTIVE"
        assert info["sizeBytes"] == str(image.stat().st_size)
        response = json.loads((tmp_path / "response.json").read_text())
        assert response["candidates"][0]["content"]["parts"][0]["text"].strip()
