"""`pollux doctor`: check a data dir against its database and repair only what is proven.

Works on either blob store: on S3 each ACTIVE file's object is streamed through SHA-256 (read, not
downloaded to disk), and "no server running" means none on this node's data dir: with several nodes
on one bucket, stop them all (or use --dry-run) before repairing.

Checked: the database's own integrity, every ACTIVE file's bytes against its size and SHA-256,
bytes the database does not explain, rows whose bytes are gone, uploads missing acknowledged bytes.
Repaired (unless --dry-run, and only with no server running): interrupted commits settled, bytes of
deleted files and cancelled uploads removed, unowned artifacts removed, files whose bytes are gone or
wrong marked FAILED (so prompts stop using them). Unexplained bytes are listed, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pollux.files import recovery
from pollux.files.blobs import BlobStore
from pollux.files.dirlock import DirLock
from pollux.files.records import State
from pollux.files.store import MetadataStore


DATA_LOSS = 15  # google.rpc.Code


@dataclass
class DoctorReport:
    lines: list[str] = field(default_factory=list)
    problems: int = 0  # things wrong with stored data (non-zero exit)
    repaired: int = 0

    def problem(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"PROBLEM  {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"         {text}")


def run_doctor(store: MetadataStore, blobs: BlobStore, dry_run: bool = False) -> DoctorReport:
    report = DoctorReport()
    lock = DirLock(blobs.root, exclusive=True)
    repair = not dry_run and lock.held
    if not dry_run and not lock.held:
        report.note("a server is using this data dir: checking only (stop it to let doctor repair)")
    try:
        for text in store.integrity_problems():
            report.problem(f"database: {text}")
        if repair:
            settled = recovery.settle_commits(store, blobs)
            for how, ids in settled.items():
                if ids:
                    report.note(f"settled {len(ids)} interrupted commit(s) ({how})")
                    report.repaired += len(ids) if how in ("forward", "back") else 0
            for sid in settled["lost"]:
                report.problem(f"upload session {sid} was committing but its bytes are gone (cancelled)")
        found = recovery.survey(store, blobs)
        checked, bad = _verify(store, blobs, report)
        for key in found.unexplained_blobs:
            report.problem(f"blob {key}: no file row, tombstone or upload owns it (kept; restore the database "
                           "from a backup to get its metadata back)")
        for sid in found.unexplained_staging:
            report.problem(f"staging file of unknown upload session {sid[:12]}… (kept)")
        for rec in found.dangling_rows:
            if rec.state == State.FAILED:  # already unusable, as the API says
                report.note(f"files/{rec.id} (project {rec.project}) is FAILED and has no bytes")
                continue
            report.problem(f"files/{rec.id} (project {rec.project}): its bytes are missing")
            bad.append((rec, "its stored bytes are missing"))
        for sid in found.lost_sessions:
            report.problem(f"upload session {sid[:12]}… is missing acknowledged bytes (the client must restart it)")
        garbage = len(found.tombstoned) + len(found.dead_staging) + len(found.stray_artifacts)
        if garbage:
            report.note(f"garbage: {len(found.tombstoned)} deleted file(s)' bytes, {len(found.dead_staging)} "
                        f"cancelled upload(s), {len(found.stray_artifacts)} unowned artifact(s)"
                        + (" — removed" if repair else ""))
        if repair:
            report.repaired += recovery.remove_garbage(store, blobs, found)
            for rec, why in bad:
                if rec.state != State.FAILED:
                    store.update_file(rec.key, state=State.FAILED,
                                      error={"code": DATA_LOSS, "message": f"The file is unusable: {why}. Upload it again."})
                    report.repaired += 1
                    report.note(f"files/{rec.id} marked FAILED")
        report.lines.append(
            f"summary: {checked} ACTIVE file(s) verified, {len(bad)} unusable, {found.unexplained} unexplained "
            f"item(s), {report.problems} problem(s), {report.repaired} repair(s)"
            + (" (dry run)" if dry_run else ""))
    finally:
        lock.release()
    return report


def _verify(store: MetadataStore, blobs: BlobStore, report: DoctorReport) -> tuple[int, list]:
    checked, bad = 0, []
    for rec in store.all_files():
        if rec.state != State.ACTIVE:
            continue
        size = blobs.blob_size(rec.key)
        if size is None:
            continue  # reported as a dangling row
        checked += 1
        if size != rec.size_bytes:
            why = f"{size} bytes on disk, {rec.size_bytes} recorded"
        elif blobs.blob_sha256(rec.key) != rec.sha256:  # S3: the object streamed through the digest
            why = "its bytes do not match their SHA-256"
        else:
            continue
        report.problem(f"files/{rec.id} (project {rec.project}): {why}")
        bad.append((rec, why))
    return checked, bad
