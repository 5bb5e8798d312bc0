"""Images whose vision features an engine computes stay PROCESSING until they are ready, and are usable
(not refused) meanwhile; crashes and failures of the warm-up never lose or fail the file."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pollux.catalog import Catalog, ModelEntry
from pollux.warmup import Warmup
from pollux.engines.hub import EngineHub
from pollux.errors import FileNotActive
from pollux.files.records import State
from pollux.files.service import FileService, NewFile
from tests.conftest import png_bytes


async def _chunks(*parts):
    for p in parts:
        yield p


class WarmingEngine:
    """Stands in for an engine that caches vision features: `precompute` finishes when the test says."""

    release = threading.Event()
    fail = False
    seen: list = []

    precomputes = True

    def __init__(self, entry, settings):
        self.entry = entry

    def info(self):
        return {"loaded": True}

    def is_loaded(self):
        return True

    def precompute(self, load_prompt, warm_prefix=True, done=None, then=None):
        def work():
            if not self.fail:  # failing = the engine's plan raised: `done` is still set
                self.release.wait(10)
                self.seen.append(load_prompt)
            done.set()

        threading.Thread(target=work, daemon=True).start()


class NotWarming:
    def __init__(self, entry, settings):
        self.entry = entry

    precomputes = False

    def info(self):
        return {"loaded": False}

    def is_loaded(self):
        return False


def _service(settings, engine: str) -> tuple[FileService, Warmup]:
    entry = ModelEntry(id="m", display_name="m", description="", engine=f"{__name__}:{engine}", source="x",
                       family="smolvlm")
    settings = settings.model_copy(update={"emulator": False, "default_model": "m"})
    svc = FileService(settings)
    hub = EngineHub(settings)
    warmup = Warmup(hub, Catalog([entry]), svc, image_timeout=10)
    warmup.prompt_for = lambda engine, record, prepared=None: ("prompt for", record.id)  # no real model here
    svc.processing_wanted.append(warmup.wants)
    svc.processor.hooks.append(warmup.on_processed)
    svc.start()
    return svc, warmup


def _upload(svc: FileService, mime: str = "image/png", data: bytes | None = None):
    return asyncio.run(svc.upload_stream("demo", NewFile(mime_type=mime), _chunks(data or png_bytes()), "raw"))


@pytest.fixture(autouse=True)
def _reset():
    WarmingEngine.release = threading.Event()
    WarmingEngine.fail = False
    WarmingEngine.seen = []


def test_image_is_processing_until_its_features_are_ready_and_usable_meanwhile(settings):
    svc, _ = _service(settings, "WarmingEngine")
    rec = _upload(svc)
    assert rec.state == State.PROCESSING
    assert svc.get_usable("demo", rec.name).id == rec.id  # a prompt may name it now: it waits for the work
    WarmingEngine.release.set()
    assert svc.processor.wait_idle(10)
    assert svc.get("demo", rec.name).state == State.ACTIVE
    assert WarmingEngine.seen and WarmingEngine.seen[0]() == ("prompt for", rec.id)
    svc.stop()


def test_a_failed_warm_up_still_makes_the_image_active(settings):
    svc, _ = _service(settings, "WarmingEngine")
    WarmingEngine.fail = True
    rec = _upload(svc)
    assert svc.processor.wait_idle(10)
    assert svc.get("demo", rec.name).state == State.ACTIVE
    svc.stop()


def test_without_a_warming_engine_images_are_active_at_once(settings):
    svc, _ = _service(settings, "NotWarming")
    rec = _upload(svc)
    assert rec.state == State.ACTIVE
    svc.stop()


def test_a_processing_video_is_still_refused(settings):
    svc, _ = _service(settings, "WarmingEngine")
    rec = svc.store.get_file("demo", _upload(svc).id)
    svc.store.update_file(rec.id, mime_type="video/mp4", state=State.PROCESSING)
    with pytest.raises(FileNotActive):
        svc.get_usable("demo", rec.name)
    WarmingEngine.release.set()
    svc.stop()


def test_an_image_processing_at_a_crash_is_active_after_restart(settings):
    svc, _ = _service(settings, "WarmingEngine")
    rec = _upload(svc)
    svc.stop()  # a shutdown while the warm-up runs: the wait ends, the row stays PROCESSING, bytes kept
    WarmingEngine.release.set()
    assert svc.store.get_file("demo", rec.id).state == State.PROCESSING
    again, _ = _service(settings, "WarmingEngine")  # start-up resubmits every PROCESSING row
    assert again.processor.wait_idle(10)
    assert again.get("demo", rec.name).state == State.ACTIVE
    assert again.blobs.blob_path(rec.id).read_bytes() == png_bytes()
    again.stop()
