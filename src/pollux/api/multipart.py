"""A streaming `multipart/related` reader: JSON metadata part, then the media part's bytes as they arrive.

python-multipart's form parser targets multipart/form-data and spools to disk; the upload
protocols need related parts and must stream a 2 GB media part straight to the blob store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pollux.api import json_reader
from pollux.errors import InvalidArgument

MAX_HEADER_BYTES = 64 * 1024


class RelatedReader:
    def __init__(self, body: AsyncIterator[bytes], boundary: str):
        self.body = body.__aiter__()
        self.delim = b"--" + boundary.encode()
        self.buf = b""
        self.done = False

    async def _fill(self) -> bool:
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            return False
        self.buf += chunk
        return True

    async def _until(self, marker: bytes, limit: int) -> bytes:
        while (i := self.buf.find(marker)) < 0:
            if len(self.buf) > limit or not await self._fill():
                raise InvalidArgument("Malformed multipart/related body.")
        out, self.buf = self.buf[:i], self.buf[i + len(marker):]
        return out

    async def _headers(self) -> dict[str, str]:
        raw = await self._until(b"\r\n\r\n", MAX_HEADER_BYTES)
        headers = {}
        for line in raw.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        return headers

    async def metadata(self) -> tuple[dict, dict[str, str]]:
        """Read up to the media part: (metadata JSON, media part headers)."""
        await self._until(self.delim + b"\r\n", MAX_HEADER_BYTES)
        headers = await self._headers()
        raw = await self._until(b"\r\n" + self.delim, 16 * 1024 * 1024)
        if "json" in headers.get("content-type", "application/json"):
            meta = json_reader.loads_object(raw)
        else:  # a media-only body: that part was the media itself
            raise InvalidArgument("The first part of a multipart upload must be the JSON metadata.")
        if self.buf.startswith(b"--"):
            raise InvalidArgument("The multipart upload has no media part.")
        await self._until(b"\r\n", MAX_HEADER_BYTES)
        return meta, await self._headers()

    async def media(self) -> AsyncIterator[bytes]:
        """The media part's bytes, ending at the closing delimiter."""
        end = b"\r\n" + self.delim
        keep = len(end) - 1
        while True:
            i = self.buf.find(end)
            if i >= 0:
                if self.buf[:i]:
                    yield self.buf[:i]
                self.buf = b""
                return
            if len(self.buf) > keep:
                out, self.buf = self.buf[:-keep], self.buf[-keep:]
                yield out
            if not await self._fill():
                raise InvalidArgument("The multipart upload ended before its closing boundary.")
