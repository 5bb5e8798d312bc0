"""Video and audio through the Files API: PROCESSING → ACTIVE/FAILED, prompts, delete, restart."""

import base64
import shutil
import time

import pytest

from tests.api.helpers import assert_error, upload
from tests.conftest import H, ctx_of
from tests.fixtures.media import write_audio, write_video

URL = "/v1beta/models/gemini-2.0-flash"


def _wait(client, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = client.get(f"/v1beta/{name}", headers=H).json()
        if f["state"] != "PROCESSING":
            return f
        time.sleep(0.1)
    raise TimeoutError(name)


def _text(r) -> str:
    assert r.status_code == 200, r.text
    return r.json()["candidates"][0]["content"]["parts"][0]["text"]


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.mp4", seconds=4.0, audio=True).read_bytes()


def test_video_processes_to_active_with_duration_and_frames(client, video):
    f = upload(client, video, mime="video/mp4")
    assert f["state"] == "PROCESSING"
    f = _wait(client, f["name"])
    assert f["state"] == "ACTIVE", f
    assert float(f["videoMetadata"]["videoDuration"].rstrip("s")) == pytest.approx(4.0, abs=0.2)
    body = {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"], "mimeType": "video/mp4"}},
                                    {"text": "Summarize this video."}]}]}
    text = _text(client.post(f"{URL}:generateContent", headers=H, json=body))
    for stamp in ("[00:00]", "[00:01]", "[00:02]", "[00:03]"):
        assert stamp in text
    usage = client.post(f"{URL}:countTokens", headers=H, json=body).json()
    details = {d["modality"]: d["tokenCount"] for d in usage["promptTokensDetails"]}
    assert details["VIDEO"] >= 4 * 258 and details["AUDIO"] == 4 * 32


def test_video_metadata_clip_and_fps(client, video):
    f = _wait(client, upload(client, video, mime="video/mp4")["name"])
    part = {"fileData": {"fileUri": f["uri"]}, "videoMetadata": {"startOffset": "1s", "endOffset": "3s", "fps": 2}}
    text = _text(client.post(f"{URL}:generateContent", headers=H, json={"contents": [{"parts": [part]}]}))
    frames = [line for line in text.splitlines() if "video frame" in line]
    assert frames and all(any(s in line for s in ("[00:01]", "[00:02]", "[00:03]")) for line in frames)
    assert len(frames) >= 4  # 2 fps over 2 s


def test_bad_video_metadata(client, video):
    f = _wait(client, upload(client, video, mime="video/mp4")["name"])
    part = {"fileData": {"fileUri": f["uri"]}, "videoMetadata": {"fps": 100}}
    assert_error(client.post(f"{URL}:generateContent", headers=H, json={"contents": [{"parts": [part]}]}),
                 400, "INVALID_ARGUMENT")
    part = {"fileData": {"fileUri": f["uri"]}, "videoMetadata": {"startOffset": "soon"}}
    assert_error(client.post(f"{URL}:generateContent", headers=H, json={"contents": [{"parts": [part]}]}),
                 400, "INVALID_ARGUMENT")


def test_corrupt_video_fails_with_a_status(client):
    junk = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x13" * 5000
    f = _wait(client, upload(client, junk, mime="video/mp4")["name"])
    assert f["state"] == "FAILED"
    assert f["error"]["code"] == 3 and f["error"]["message"]
    body = {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}]}]}
    assert_error(client.post(f"{URL}:generateContent", headers=H, json=body), 400, "FAILED_PRECONDITION", "failed")


def test_too_long_video_fails(make_client, tmp_path):
    client = make_client(max_video_seconds=2.0)
    data = write_video(tmp_path / "long.mp4", seconds=4.0).read_bytes()
    f = _wait(client, upload(client, data, mime="video/mp4")["name"])
    assert f["state"] == "FAILED" and "long" in f["error"]["message"].lower()


def test_audio_file(client, tmp_path):
    data = write_audio(tmp_path / "tone.mp3", "mp3", seconds=3.0).read_bytes()
    f = _wait(client, upload(client, data, mime="audio/mpeg")["name"])
    assert f["state"] == "ACTIVE" and f["mimeType"] == "audio/mpeg"  # as the client named it, like Gemini
    body = {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}, {"text": "Transcribe."}]}]}
    details = client.post(f"{URL}:countTokens", headers=H, json=body).json()["promptTokensDetails"]
    assert {d["modality"]: d["tokenCount"] for d in details}["AUDIO"] == 96


def test_inline_video(client, tmp_path):
    data = write_video(tmp_path / "inline.webm", "webm", seconds=2.0).read_bytes()
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "video/webm",
                                                    "data": base64.b64encode(data).decode()}}]}]}
    text = _text(client.post(f"{URL}:generateContent", headers=H, json=body))
    assert "[00:00]" in text and "[00:01]" in text


def test_delete_while_processing_leaves_nothing(make_client, tmp_path):
    client = make_client(processing_workers=1)
    blobs = ctx_of(client).files.blobs
    long = write_video(tmp_path / "a.mp4", seconds=20.0, size=(320, 240)).read_bytes()
    f = upload(client, long, mime="video/mp4")
    client.request("DELETE", f"/v1beta/{f['name']}", headers=H)
    assert ctx_of(client).files.processor.wait_idle(60)
    file_id = f["name"][6:]
    assert not blobs.blob_path(file_id).exists()
    assert not any(p.name.startswith(file_id) for p in blobs.artifacts.iterdir())


def test_processing_resumes_after_a_crash(make_client, settings, video):
    client = make_client()
    f = _wait(client, upload(client, video, mime="video/mp4")["name"])
    svc = ctx_of(client).files
    file_id = f["name"][6:]
    client.__exit__(None, None, None)
    # Recreate the on-disk state a kill -9 mid-processing leaves: the row still PROCESSING, a half-built artifact.
    svc.store.update_file(file_id, state="PROCESSING", video_duration=None)
    art = svc.blobs.artifact_dir(file_id)
    shutil.rmtree(art)
    art.mkdir()
    (art / "frame_00001.jpg").write_bytes(b"half")
    again = make_client()
    assert client.get  # the old client is closed; the new app recovers the job on start-up
    f2 = _wait(again, f["name"])
    assert f2["state"] == "ACTIVE" and "videoMetadata" in f2


def test_frame_count_is_capped_before_decoding(make_client, video):
    client = make_client(max_images_per_request=10)
    f = _wait(client, upload(client, video, mime="video/mp4")["name"])
    part = {"fileData": {"fileUri": f["uri"]}, "videoMetadata": {"fps": 24}}  # 4 s x 24 = 96 frames
    err = assert_error(client.post(f"{URL}:generateContent", headers=H, json={"contents": [{"parts": [part]}]}),
                       400, "INVALID_ARGUMENT", "96")
    assert "fps" in err["message"]
    art = ctx_of(client).files.blobs.artifact_dir(f["name"][6:])
    assert not any(p.name.startswith("frames_fps") for p in art.iterdir())
