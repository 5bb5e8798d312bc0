"""The playground in headless Chromium against a live emulator: upload, ask, stream, boxes, timestamps, files."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server + "/")
    yield page
    context.close()
    assert not errors, errors


def connect(page, key: str = "test-key") -> None:
    page.fill("#api-key", key)
    page.press("#api-key", "Tab")  # `change` connects
    page.wait_for_selector("#model:not([disabled])")


def attach(page, path: Path) -> None:
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector(f'#attachments li[data-state="ACTIVE"] >> text={path.name}')


def make_png(path: Path) -> Path:
    rng = random.Random(7)
    img = Image.new("RGB", (320, 240), "lightblue")
    img.putdata([(rng.randrange(100, 256), 120, 200) for _ in range(320 * 240)])
    img.save(path)
    return path


def make_webm(path: Path, seconds: int = 6, fps: int = 5) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(seconds * fps):
            vf = av.VideoFrame.from_ndarray(np.full((96, 128, 3), i * 8 % 256, dtype=np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(vf))
        out.mux(stream.encode())
    return path


def test_key_is_kept_in_the_browser_and_sent_as_header(page, live_server):
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.headers) if "/v1beta/" in r.url else None)
    connect(page)
    assert page.evaluate("localStorage.getItem('pollux.apiKey')") == "test-key"
    assert sent and all(h.get("x-goog-api-key") == "test-key" for h in sent)
    assert all("key=" not in r for r in page.evaluate("performance.getEntries().map(e => e.name)"))
    page.reload()
    page.wait_for_selector("#model:not([disabled])")  # reconnects with the stored key
    assert "models/gemini-2.0-flash" in page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")


def test_bad_key_shows_the_error(page):
    page.fill("#api-key", "bad-key")
    page.press("#api-key", "Tab")
    page.wait_for_selector('#status[data-kind="error"]')
    assert "API key not valid" in page.text_content("#status")


def test_image_upload_ask_stream_and_box(page, tmp_path):
    connect(page)
    page.set_input_files("#file-input", str(make_png(tmp_path / "fish.png")))
    item = page.locator("#attachments li").first
    item.wait_for()
    page.wait_for_selector('#attachments li[data-state="ACTIVE"]')
    assert "files/" in item.locator(".name").text_content()

    page.fill("#prompt", "Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]")
    page.wait_for_function("/^\\d+ tokens/.test(document.getElementById('token-count').textContent)")
    assert int(page.get_attribute("#token-count", "data-tokens")) > 0

    # Record the text of every render. Each render replaces the answer's nodes, so a mutation record's
    # added nodes are that render's text, even when several records are delivered in one batch.
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver((records) => records.forEach((r) => {
            if (r.addedNodes.length) window.seen.push([...r.addedNodes].map((n) => n.textContent).join(''));
        })).observe(document.getElementById('answer'), {childList: true});
    }""")
    page.click("#send")
    page.wait_for_selector('#answer[data-state="done"]')
    answer = page.text_content("#answer")
    chunks = int(page.get_attribute("#answer", "data-chunks"))
    seen = [s for s in page.evaluate("window.seen") if s]
    assert answer.strip() and chunks >= 1
    assert seen[-1] == answer
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))  # each render extends the previous one
    if chunks > 1:  # the emulator streams its answer in pieces: each piece was shown as it came
        assert len(set(seen)) > 1, seen

    box = page.locator("#boxes .box").first
    box.wait_for()
    assert box.locator(".box-label").text_content().strip()
    img, drawn = page.locator("#stage-image").bounding_box(), box.bounding_box()
    assert img["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= img["x"] + img["width"] + 1
    assert img["y"] <= drawn["y"] and drawn["y"] + drawn["height"] <= img["y"] + img["height"] + 1
    assert "px" in box.get_attribute("title")  # the pixel conversion, for the image's own size


def watch_attachment_states(page) -> None:
    """Record every state text an attachment shows (UPLOADING percentages, PROCESSING, ACTIVE)."""
    page.evaluate("""() => {
        window.states = [];
        new MutationObserver(() => document.querySelectorAll('#attachments .state')
            .forEach((el) => { if (window.states.at(-1) !== el.textContent) window.states.push(el.textContent); }))
            .observe(document.getElementById('attachments'), {childList: true, subtree: true, characterData: true});
    }""")


def test_large_upload_shows_progress_across_chunks(page, tmp_path):
    connect(page)
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (2400, 2400), random.Random(3).randbytes(2400 * 2400 * 3)).save(big, compress_level=0)
    assert big.stat().st_size > 2 * 8 * 1024 * 1024  # three 8 MiB chunks
    watch_attachment_states(page)
    attach(page, big)
    states = page.evaluate("window.states")
    percents = [int(s[:-1]) for s in states if s.endswith("%")]
    assert percents == sorted(percents) and len(set(percents)) >= 3, states
    assert states[-1] == "ACTIVE"


def test_video_timestamps_seek(page, tmp_path):
    connect(page)
    video = make_webm(tmp_path / "clip.webm")
    uploaded = []
    page.on("response", lambda r: uploaded.append(r) if "upload_id=" in r.url or "upload/v1beta" in r.url else None)
    watch_attachment_states(page)
    attach(page, video)
    final = [r.json()["file"] for r in uploaded if r.headers.get("x-goog-upload-status") == "final"]
    assert final and final[0]["mimeType"] == "video/webm"
    if final[0]["state"] == "PROCESSING":  # then the playground must show it until files.get says ACTIVE
        assert "PROCESSING" in page.evaluate("window.states")
    page.fill("#prompt", "What happens at 00:02 and at 00:04?")
    page.click("#send")
    page.wait_for_selector('#answer[data-state="done"]')
    link = page.locator('#answer a.ts[data-seconds="4"]').first
    link.wait_for()
    page.wait_for_function("document.getElementById('stage-video').readyState >= 1")
    link.click()
    page.wait_for_function("Math.abs(document.getElementById('stage-video').currentTime - 4) < 0.5")
    page.locator('#answer a.ts[data-seconds="2"]').first.click()
    page.wait_for_function("Math.abs(document.getElementById('stage-video').currentTime - 2) < 0.5")


def test_file_list_and_delete(page, tmp_path):
    connect(page)
    attach(page, make_png(tmp_path / "to-delete.png"))
    name = page.locator("#attachments li .name").first.text_content().split(" · ")[1]
    row = page.locator(f'#files tr[data-name="{name}"]')
    row.wait_for()
    row.locator("button.delete").click()
    row.wait_for(state="detached")
    page.wait_for_selector('#status[data-kind="ok"]')
    assert page.locator("#attachments li").count() == 0  # the deleted file left the prompt too
