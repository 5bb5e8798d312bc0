"""Stored interactions (the Interactions API's server-side conversation state), per project.

A row is one interaction as the API shows it (its input and output steps, config, usage) in JSON, plus the
id of the interaction it continues. A conversation is read by walking `previous_id` back; using an
interaction as the previous one extends the whole chain's expiry to the new interaction's, so a live
conversation never loses its first turns. Every query names the project: another project's id reads
as a missing one. Expired rows are invisible at once and purged on the next write.
"""

from __future__ import annotations

import json

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, and_, delete, insert, select, update

from pollux.files.store import MetadataStore, metadata, now_us

interactions = Table(
    "interactions", metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("previous_id", String(64)),
    Column("body", Text, nullable=False),  # the interaction resource as GET shows it (JSON)
    Column("create_us", BigInteger, nullable=False),
    Column("expire_us", BigInteger, nullable=False),
    Index("ix_interactions_project_id", "project", "id"),
    Index("ix_interactions_expire", "expire_us"),
)

MAX_CHAIN = 1000  # turns walked back for one request: beyond this a conversation is cut, oldest first


class InteractionStore:
    def __init__(self, store: MetadataStore, ttl_seconds: int):
        self.db = store
        self.ttl_us = ttl_seconds * 1_000_000

    def get(self, project: str, interaction_id: str) -> dict | None:
        with self.db.engine.connect() as c:
            row = c.execute(select(interactions.c.body).where(
                and_(interactions.c.id == interaction_id, interactions.c.project == project,
                     interactions.c.expire_us > now_us()))).first()
        return json.loads(row.body) if row else None

    def chain(self, project: str, interaction_id: str) -> list[dict] | None:
        """The conversation ending with `interaction_id`, oldest first; None when that one is not stored.
        An ancestor that is gone (deleted) ends the walk: the conversation starts after it."""
        found: list[dict] = []
        now = now_us()
        with self.db.engine.connect() as c:
            next_id: str | None = interaction_id
            while next_id and len(found) < MAX_CHAIN:
                row = c.execute(select(interactions.c.body, interactions.c.previous_id).where(
                    and_(interactions.c.id == next_id, interactions.c.project == project,
                         interactions.c.expire_us > now))).first()
                if row is None:
                    break
                found.append(json.loads(row.body))
                next_id = row.previous_id
        if not found:
            return None
        return found[::-1]

    def insert(self, project: str, body: dict, chain_ids: list[str]) -> None:
        """Store `body` (its `id`, `previous_interaction_id`); the chain it continues lives as long as it does."""
        now = now_us()
        expire = now + self.ttl_us
        with self.db.writing() as c:
            c.execute(delete(interactions).where(interactions.c.expire_us <= now))
            c.execute(insert(interactions).values(
                id=body["id"], project=project, previous_id=body.get("previous_interaction_id"),
                body=json.dumps(body, separators=(",", ":")), create_us=now, expire_us=expire))
            if chain_ids:
                c.execute(update(interactions).where(and_(
                    interactions.c.project == project, interactions.c.id.in_(chain_ids),
                    interactions.c.expire_us < expire)).values(expire_us=expire))

    def delete(self, project: str, interaction_id: str) -> bool:
        with self.db.writing() as c:
            gone = c.execute(delete(interactions).where(and_(
                interactions.c.id == interaction_id, interactions.c.project == project,
                interactions.c.expire_us > now_us())))
        return gone.rowcount > 0
