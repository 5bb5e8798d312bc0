"""Plain records the File service hands out (no SQLAlchemy or HTTP types leak out of `files/`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class State:
    PROCESSING = "PROCESSING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"


@dataclass
class FileRecord:
    id: str
    project: str
    display_name: str
    mime_type: str
    size_bytes: int
    sha256: str  # hex
    state: str
    create_time: datetime
    update_time: datetime
    expiration_time: datetime
    error: dict | None = None  # google.rpc.Status when FAILED
    video_duration: float | None = None
    source: str = "UPLOADED"
    meta: dict = field(default_factory=dict)
    key: str = ""  # storage key (names the blob); the id unless another project holds that id

    def __post_init__(self) -> None:
        self.key = self.key or self.id

    @property
    def name(self) -> str:
        return f"files/{self.id}"


@dataclass
class UploadSession:
    id: str  # unguessable: the session URL authorises its own chunks
    project: str
    file_id: str
    display_name: str
    mime_type: str  # as declared (may be empty until the first bytes are sniffed)
    declared_size: int | None
    received: int
    protocol: str
    status: str  # active | committing | final | cancelled
    create_time: datetime
    expire_time: datetime
    final_file_id: str | None = None  # storage key of the committed file
    reserved: int = 0  # quota bytes held
    commit: "FileRecord | None" = None  # while committing: the row to insert
