"""Audio preparation: any supported container/codec -> 16 kHz mono s16le WAV, streamed.

Uses PyAV's resampler (no system ffmpeg; media-perf.md measured ~250x realtime). The WAV starts
at the container's start time: a track that begins late is padded with silence, so audio
seconds line up with video seconds when the track comes from a video.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from pollux.errors import InvalidArgument
from pollux.media import artifact
from pollux.media.prepared import PreparedAudio

if TYPE_CHECKING:
    from pollux.settings import Settings

SAMPLE_RATE = 16000
WAV_NAME = "audio.wav"
CANCEL_CHECK_PACKETS = 64  # packets between cancelled() calls: cheap, yet prompt
_MAX_LEAD_SECONDS = 600.0  # silence we are willing to pad before a late-starting track


class WavWriter:
    """Decoded audio frames in, 16 kHz mono s16le WAV out; nothing is held in memory."""

    def __init__(self, path: Path, origin: float = 0.0):
        self.path = path
        self.samples = 0
        self._origin = origin
        self._started = False
        self._resampler = _resampler()
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE

    def write(self, frame: av.AudioFrame) -> None:
        if not self._started:
            self._started = True
            lead = (frame.time - self._origin) if frame.time is not None else 0.0
            if 0.01 < lead < _MAX_LEAD_SECONDS:
                self._write_pcm(np.zeros(int(lead * SAMPLE_RATE), dtype=np.int16))
        try:
            converted = self._resampler.resample(frame)
        except ValueError:  # the input layout/rate changed mid-stream: start a new resampler
            self._flush()
            self._resampler = _resampler()
            converted = self._resampler.resample(frame)
        for out in converted:
            self._write_pcm(out.to_ndarray().reshape(-1))

    def close(self) -> float:
        """Flush and finish the file; returns the duration in seconds."""
        try:
            self._flush()
        finally:
            self._wav.close()
        return self.duration

    def _flush(self) -> None:
        for out in self._resampler.resample(None):
            self._write_pcm(out.to_ndarray().reshape(-1))

    def _write_pcm(self, pcm: np.ndarray) -> None:
        self._wav.writeframesraw(pcm.astype("<i2", copy=False).tobytes())
        self.samples += len(pcm)


def _resampler() -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


def decode_packet(packet: av.Packet) -> list:
    """Frames of one packet; a damaged packet gives none instead of failing the whole file."""
    try:
        return packet.decode()
    except (av.error.FFmpegError, ValueError):
        return []


def demux(container: av.container.InputContainer, streams: list) -> Iterator[av.Packet]:
    """Packets of `streams`; a file cut short ends the stream instead of raising."""
    packets = container.demux(streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            return
        yield packet


def too_long(what: str, seconds: float, limit: float) -> InvalidArgument:
    return InvalidArgument(f"The {what} is too long: {seconds:.1f} s exceeds the limit of {limit:g} s.")


def start_time(container: av.container.InputContainer) -> float:
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def known_duration(container: av.container.InputContainer) -> float | None:
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def write_wav(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    path: Path,
    cancelled: Callable[[], bool],
    limit: float | None = None,
) -> WavWriter:
    """Decode `stream` into a WAV at `path` (starting at the container's start time); closed on return."""
    writer = WavWriter(path, origin=start_time(container))
    try:
        for n, packet in enumerate(demux(container, [stream])):
            if n % CANCEL_CHECK_PACKETS == 0:
                artifact.check_cancelled(cancelled)
                if limit is not None and writer.duration > limit:
                    raise too_long("audio", writer.duration, limit)
            for frame in decode_packet(packet):
                writer.write(frame)
    finally:
        writer.close()
    return writer


def prepare_audio(blob: Path, artifact_dir: Path, settings: Settings, cancelled: Callable[[], bool]) -> PreparedAudio:
    """Decode an audio file into its artifact (audio.wav + manifest.json)."""
    limit = settings.max_audio_seconds
    with artifact.open_media(blob) as container:
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise InvalidArgument("The file has no audio stream.")
        declared = known_duration(container)
        if declared is not None and declared > limit:
            raise too_long("audio", declared, limit)
        with artifact.building(artifact_dir, cancelled) as staging:
            writer = write_wav(container, stream, staging / WAV_NAME, cancelled, limit)
            duration = writer.duration
            if writer.samples == 0:
                raise InvalidArgument("The audio could not be decoded: no samples were found.")
            if duration > limit:
                raise too_long("audio", duration, limit)
            sha256 = artifact.file_sha256(blob, cancelled)
            artifact.write_manifest(
                staging,
                {"kind": "audio", "duration": duration, "sample_rate": SAMPLE_RATE, "wav": WAV_NAME, "sha256": sha256},
            )
    return load_audio(blob, artifact_dir)


def load_audio(blob: Path, artifact_dir: Path) -> PreparedAudio:
    manifest = artifact.read_manifest(artifact_dir, "audio")
    return PreparedAudio(
        duration=manifest["duration"], wav_path=artifact_dir / manifest["wav"], artifact_dir=artifact_dir
    )
