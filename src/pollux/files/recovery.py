"""What start-up and `pollux doctor` know about the data dir, from the database's point of view.

The one rule: bytes are removed only when the database proves them garbage: a tombstone (the file
was deleted), a cancelled session's staging file, or an artifact (derived data) no file owns. Any
blob or staging file the database cannot explain — a missing, empty, truncated or rolled-back
database — stops start-up instead of being swept, because those bytes may be the only copy of an
acknowledged upload.

On a shared database other nodes keep serving while one recovers (under the housekeeping lock), so:
a session is settled only while recovery holds its upload lock (`locks.claim`; a live node writing or
committing it holds that lock, a dead node's lock died with it), and bytes count as unexplained only
when two surveys in a row find them so (a file deleted, or a commit made, between one survey's listing
and its database read is explained by the next).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pollux.files.blobs import BlobStore
from pollux.files.locks import claim
from pollux.files.records import FileRecord, UploadSession
from pollux.files.store import MetadataStore, StorageError

log = logging.getLogger("pollux.files")

DOCTOR_HINT = ("Nothing was deleted. Restore the database from a backup (`pollux backup`), or run "
               "`pollux doctor --data-dir {dir}` to see what is on disk and what the database knows.")


@dataclass
class Survey:
    unexplained_blobs: list[str] = field(default_factory=list)  # bytes no row, tombstone or commit owns
    unexplained_staging: list[str] = field(default_factory=list)  # staging files without a session row
    tombstoned: list[str] = field(default_factory=list)  # deleted files whose bytes are still on disk
    dead_staging: list[str] = field(default_factory=list)  # staging files of cancelled / finished sessions
    stray_artifacts: list[str] = field(default_factory=list)  # artifact entries no file owns
    dangling_rows: list[FileRecord] = field(default_factory=list)  # rows whose blob is missing
    lost_sessions: list[str] = field(default_factory=list)  # active sessions missing acknowledged bytes

    @property
    def unexplained(self) -> int:
        return len(self.unexplained_blobs) + len(self.unexplained_staging)


def settle_commits(store: MetadataStore, blobs: BlobStore) -> dict[str, list[str]]:
    """Finish or undo every commit a crash interrupted (see `settle`), and give blobs renamed by a
    version that recorded no intent back to their sessions."""
    done = settle_abandoned(store, blobs)
    for s in store.sessions_in("active"):
        if not s.received or blobs.has_staging(s.id):
            continue
        with claim(store, s.id) as mine:
            s = store.get_session(s.id) if mine else None
            if s is not None and s.status == "active" and s.received and not blobs.has_staging(s.id) \
                    and blobs.blob_size(s.file_id) == s.received and not store.file_exists(s.file_id) \
                    and s.file_id not in store.tombstoned():
                blobs.uncommit(s.file_id, s.id)
                done["back"].append(s.id)
    return done


def settle_abandoned(store: MetadataStore, blobs: BlobStore) -> dict[str, list[str]]:
    """Settle every commit nobody is making any more (see `settle`): at start-up, every one; on a shared
    database also from the periodic sweep, for commits of nodes that died (their lock died with them)."""
    done: dict[str, list[str]] = {"forward": [], "back": [], "lost": [], "busy": []}
    for s in store.sessions_in("committing"):
        with claim(store, s.id) as mine:
            s = store.get_session(s.id) if mine else None  # as it is now that nobody else may change it
            if s is not None and s.status == "committing":
                done[settle(store, blobs, s)].append(s.id)
    return done


def settle(store: MetadataStore, blobs: BlobStore, s: UploadSession) -> str:
    """A session marked `committing` whose blob was renamed into place gets its file row (roll
    forward); one whose bytes are still staged goes back to `active`, so the client's retried
    finalize commits it with every check (roll back). Returns forward, back, lost, or busy: another
    node is assembling that blob right now (S3), so the commit is its to finish.

    A visible blob is checked before the staged bytes: on S3 the chunks stay until the row is in, and
    a blob only becomes visible after every check passed and its digest was recorded."""
    rec = s.commit
    if rec is None:
        store.update_session(s.id, status="active", final_file_id=None, commit_json=None)
        return "back"
    if store.file_exists(rec.key) or blobs.blob_size(rec.key) == rec.size_bytes:
        store.finish_commit(s.id, rec)
        blobs.discard_staging(s.id)  # S3: the chunks; on disk they were renamed into the blob
        return "forward"
    if blobs.commit_in_flight(rec.key):
        return "busy"
    if blobs.has_staging(s.id):
        blobs.remove_artifacts(rec.key)  # an image decoded for the interrupted commit: rebuilt on retry
        store.update_session(s.id, status="active", final_file_id=None, commit_json=None)
        return "back"
    log.error("upload session %s was committing %s but its bytes are gone", s.id, rec.key)
    store.update_session(s.id, status="cancelled", final_file_id=None, commit_json=None, reserved=0)
    return "lost"


def survey(store: MetadataStore, blobs: BlobStore) -> Survey:
    inv = blobs.inventory()
    rows = {r.key: r for r in store.all_files()}
    tombstones = store.tombstoned()
    sessions = {s.id: s for s in store.sessions_in("active", "committing", "final", "cancelled")}
    committing = {s.final_file_id for s in sessions.values() if s.status == "committing" and s.final_file_id}
    out = Survey()
    for key in sorted(inv.blobs):
        if key in rows or key in committing:
            continue
        (out.tombstoned if key in tombstones else out.unexplained_blobs).append(key)
    out.tombstoned += sorted(k for k in tombstones - inv.blobs if k not in rows and k in inv.artifacts)
    for sid in sorted(inv.staging):
        s = sessions.get(sid)
        if s is None:
            out.unexplained_staging.append(sid)
        elif s.status in ("cancelled", "final"):
            out.dead_staging.append(sid)
    for s in sessions.values():
        if s.status == "active" and s.received and blobs.staging_size(s.id) < s.received:
            out.lost_sessions.append(s.id)
    for owner, names in sorted(inv.artifacts.items()):
        if owner not in rows and owner not in committing and owner not in tombstones:
            out.stray_artifacts += names
    out.dangling_rows = [r for k, r in sorted(rows.items()) if k not in inv.blobs]
    return out


def _confirmed(first: Survey, second: Survey) -> Survey:
    """The second survey, its unexplained entries cut to those the first also found."""
    second.unexplained_blobs = [k for k in second.unexplained_blobs if k in set(first.unexplained_blobs)]
    second.unexplained_staging = [k for k in second.unexplained_staging if k in set(first.unexplained_staging)]
    return second


def remove_garbage(store: MetadataStore, blobs: BlobStore, found: Survey) -> int:
    """Remove exactly what the survey proved to be garbage; the number of entries removed."""
    for key in found.tombstoned:
        blobs.remove(key)
        store.forget_tombstone(key)
    for sid in found.dead_staging:
        blobs.discard_staging(sid)
    for name in found.stray_artifacts:
        blobs.remove_artifact_entry(name)
    for key in store.tombstoned():  # tombstones whose bytes were already gone
        if blobs.blob_size(key) is None and not store.file_exists(key):
            store.forget_tombstone(key)
    return len(found.tombstoned) + len(found.dead_staging) + len(found.stray_artifacts)


def recover(store: MetadataStore, blobs: BlobStore) -> Survey:
    """Start-up: settle interrupted commits, refuse unexplained bytes, then remove proven garbage."""
    settled = settle_commits(store, blobs)
    if settled["forward"] or settled["back"]:
        log.info("settled interrupted commits: %d finished, %d back to resumable",
                 len(settled["forward"]), len(settled["back"]))
    found = survey(store, blobs)
    if found.unexplained:  # look again: another node may have been deleting or committing meanwhile
        found = _confirmed(found, survey(store, blobs))
    if found.unexplained:
        raise StorageError(
            f"{_sentence(blobs.describe())} holds {len(found.unexplained_blobs)} stored file(s) and "
            f"{len(found.unexplained_staging)} upload(s) that the metadata database does not know "
            "(is pollux.db missing, empty, truncated, or did it lose its -wal file?). "
            + DOCTOR_HINT.format(dir=blobs.root))
    removed = remove_garbage(store, blobs, found)
    if removed:
        log.info("removed %d entr%s the database marks as garbage", removed, "y" if removed == 1 else "ies")
    for rec in found.dangling_rows:
        log.error("file %s (project %s) has no bytes on disk; run `pollux doctor`", rec.id, rec.project)
    return found


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
