from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Select,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.models import (
    GENESIS_HASH,
    AuditChainHead,
    AuditChainMark,
    AuditCheckpoint,
    AuditCheckpointEntry,
    AuditEvent,
)
from registry.models.audit_event import LEGACY_CHAIN

Head = tuple[int, int, str]  # last_chain_seq, last_seq, last_hash
INSERT_CHUNK = 1000  # rows per multi-row INSERT (x 13 columns, well under 65,535 parameters)
_EVENT_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "tenant_id",
    "action",
    "target_type",
    "target_id",
    "details",
    "prev_hash",
    "hash",
    "hash_scheme",
    "chain",
    "chain_seq",
)
# Lock (creating the missing ones) every head in chain order, then, once all are locked (the
# count consumes the upsert), draw the events' seqs: inside a chain seq then grows with chain_seq.
_PG_LOCK_HEADS = text(
    "WITH h AS (INSERT INTO audit_chain_heads (chain, last_chain_seq, last_seq, last_hash) "
    "SELECT c, 0, 0, :g FROM unnest(CAST(:chains AS varchar[])) WITH ORDINALITY AS u(c, o) "
    "ORDER BY o ON CONFLICT (chain) DO UPDATE SET last_seq = audit_chain_heads.last_seq "
    "RETURNING chain, last_chain_seq, last_seq, last_hash), "
    "locked AS (SELECT count(*) AS k FROM h), "
    "seqs AS (SELECT array_agg(s ORDER BY s) AS a FROM (SELECT nextval('audit_events_seq') AS s "
    "FROM generate_series(1, :n), locked WHERE locked.k > 0) AS q) "
    "SELECT h.chain, h.last_chain_seq, h.last_seq, h.last_hash, seqs.a FROM h, seqs"
)
_PG_APPEND = text(
    "WITH ins AS (INSERT INTO audit_events (seq, occurred_at, actor, actor_role, tenant_id, "
    "action, target_type, target_id, details, prev_hash, hash, hash_scheme, chain, chain_seq) "
    "SELECT seq, occurred_at, actor, actor_role, tenant_id, action, target_type, target_id, "
    "CAST(details AS json), prev_hash, hash, hash_scheme, chain, chain_seq FROM unnest("
    "CAST(:seq AS bigint[]), CAST(:occurred_at AS timestamptz[]), CAST(:actor AS varchar[]), "
    "CAST(:actor_role AS varchar[]), CAST(:tenant_id AS uuid[]), CAST(:action AS varchar[]), "
    "CAST(:target_type AS varchar[]), CAST(:target_id AS varchar[]), "
    "CAST(:details AS text[]), CAST(:prev_hash AS varchar[]), CAST(:hash AS varchar[]), "
    "CAST(:hash_scheme AS varchar[]), CAST(:chain AS varchar[]), CAST(:chain_seq AS bigint[])"
    ") AS u(seq, occurred_at, actor, actor_role, tenant_id, action, target_type, target_id, "
    "details, prev_hash, hash, hash_scheme, chain, chain_seq)) "
    "UPDATE audit_chain_heads AS h SET last_chain_seq = v.n, last_seq = v.s, last_hash = v.x "
    "FROM unnest(CAST(:hc AS varchar[]), CAST(:hn AS bigint[]), CAST(:hs AS bigint[]), "
    "CAST(:hx AS varchar[])) AS v(c, n, s, x) WHERE h.chain = v.c"
)
_PG_SET_HEADS = text(
    "UPDATE audit_chain_heads AS h SET last_chain_seq = v.n, last_seq = v.s, last_hash = v.x "
    "FROM unnest(CAST(:c AS varchar[]), CAST(:n AS bigint[]), CAST(:s AS bigint[]), "
    "CAST(:x AS varchar[])) AS v(c, n, s, x) WHERE h.chain = v.c"
)


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def lock_heads(self, chains: Sequence[str], events: int) -> tuple[dict[str, Head], list[int]]:
        """Create the missing heads and lock all of them, in one statement, in chain order, then
        draw `events` global seqs (increasing; PostgreSQL: the sequence; SQLite: max + 1).

        An upsert processes its rows in the order given, so every appender takes its heads
        sorted by chain: two transactions appending to the same chains cannot deadlock."""
        ordered = sorted(set(chains))
        if self._postgres:  # one statement text for any number of chains (no recompiling)
            params = {"chains": ordered, "g": GENESIS_HASH, "n": events}
            rows = self.session.execute(_PG_LOCK_HEADS, params).all()
            return {c: (n, s, h) for c, n, s, h, _ in rows}, list(rows[0][4])
        rows_in = [
            {"chain": c, "last_chain_seq": 0, "last_seq": 0, "last_hash": GENESIS_HASH}
            for c in ordered
        ]
        ins = sqlite.insert(AuditChainHead).values(rows_in)
        stmt = ins.on_conflict_do_update(
            index_elements=[AuditChainHead.chain],
            set_={"last_seq": AuditChainHead.last_seq},  # no change: only the row lock
        ).returning(
            AuditChainHead.chain,
            AuditChainHead.last_chain_seq,
            AuditChainHead.last_seq,
            AuditChainHead.last_hash,
        )
        heads = {c: (n, s, h) for c, n, s, h in self.session.execute(stmt)}
        top = self.session.execute(select(func.coalesce(func.max(AuditEvent.seq), 0))).scalar_one()
        return heads, list(range(top + 1, top + events + 1))

    def append(self, rows: Sequence[dict[str, Any]], heads: dict[str, Head]) -> None:
        """Insert the events and move their chains' heads: on PostgreSQL one statement (an
        INSERT ... SELECT FROM unnest(arrays) and an UPDATE ... FROM unnest, a fixed text)."""
        if not self._postgres:
            for i in range(0, len(rows), INSERT_CHUNK):
                self.session.execute(insert(AuditEvent).values(list(rows[i : i + INSERT_CHUNK])))
            self.set_heads(heads)
            return
        params: dict[str, Any] = {c: [r[c] for r in rows] for c in _EVENT_COLUMNS}
        params["details"] = [json.dumps(d) for d in params["details"]]
        for c in ("actor_role", "hash_scheme"):
            params[c] = [str(getattr(v, "value", v)) for v in params[c]]
        ordered = sorted(heads.items())
        params["hc"] = [c for c, _ in ordered]
        params["hn"], params["hs"], params["hx"] = ([h[i] for _, h in ordered] for i in range(3))
        self.session.execute(_PG_APPEND, params)

    def set_heads(self, heads: dict[str, Head]) -> None:
        """Move every head: one UPDATE ... FROM (VALUES ...) on PostgreSQL (SQLite, a single
        writer, takes them one by one)."""
        h = AuditChainHead
        rows = [(c, n, s, x) for c, (n, s, x) in sorted(heads.items())]
        no_sync = {"synchronize_session": False}
        if not self._postgres:
            for c, n, s, x in rows:
                stmt = update(h).where(h.chain == c)
                stmt = stmt.values(last_chain_seq=n, last_seq=s, last_hash=x)
                self.session.execute(stmt, execution_options=no_sync)
            return
        chains, ns, ss, xs = (list(col) for col in zip(*rows, strict=True))
        self.session.execute(_PG_SET_HEADS, {"c": chains, "n": ns, "s": ss, "x": xs})

    def head(self, chain: str) -> AuditChainHead | None:
        return self.session.get(AuditChainHead, chain)

    def heads(self) -> dict[str, Head]:
        rows = self.session.execute(
            select(
                AuditChainHead.chain,
                AuditChainHead.last_chain_seq,
                AuditChainHead.last_seq,
                AuditChainHead.last_hash,
            )
        )
        return {c: (n, s, h) for c, n, s, h in rows}

    def get(self, seq: int) -> AuditEvent | None:
        return self.session.get(AuditEvent, seq)

    def list(
        self,
        *,
        tenant_id: uuid.UUID | None,
        action: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        after_seq: int,
        limit: int,
    ) -> Sequence[AuditEvent]:
        stmt: Select[AuditEvent] = select(AuditEvent).where(AuditEvent.seq > after_seq)
        if tenant_id is not None:
            stmt = stmt.where(AuditEvent.tenant_id == tenant_id)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        if since is not None:
            stmt = stmt.where(AuditEvent.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.occurred_at < until)
        return self.session.execute(stmt.order_by(AuditEvent.seq).limit(limit)).scalars().all()

    def iter_legacy(self, batch: int = 1000) -> Iterator[AuditEvent]:
        """The legacy chain, by seq."""
        last = 0
        while True:
            stmt = (
                select(AuditEvent)
                .where(AuditEvent.chain == LEGACY_CHAIN, AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
            )
            rows = self.session.execute(stmt.limit(batch)).scalars().all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self.session.expunge_all()

    def iter_chains(self, chain: str | None = None, batch: int = 2000) -> Iterator[AuditEvent]:
        """Every per-chain event (or one chain's), by (chain, chain_seq): keyset pages on the
        unique index. Legacy events (chain_seq NULL) are not in it."""
        after: tuple[str, int] = (chain or "", 0)
        while True:
            stmt = select(AuditEvent).where(AuditEvent.chain_seq.is_not(None))
            if chain is not None:
                stmt = stmt.where(AuditEvent.chain == chain, AuditEvent.chain_seq > after[1])
            else:
                stmt = stmt.where(
                    (AuditEvent.chain > after[0])
                    | ((AuditEvent.chain == after[0]) & (AuditEvent.chain_seq > after[1]))
                ).where(AuditEvent.chain != LEGACY_CHAIN)
            stmt = stmt.order_by(AuditEvent.chain, AuditEvent.chain_seq).limit(batch)
            rows = self.session.execute(stmt).scalars().all()
            if not rows:
                return
            yield from rows
            after = (rows[-1].chain, rows[-1].chain_seq or 0)
            self.session.expunge_all()

    # Checkpoints

    def last_checkpoint(self, *, lock: bool = False) -> AuditCheckpoint | None:
        stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)
        return self.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()

    def changed_heads(self) -> Sequence[tuple[str, int, int, str, bool, int | None]]:
        """Heads whose chain_seq no checkpoint has recorded yet, in one statement without locks:
        chain, chain_seq, seq, hash, whether the event at seq is that tip, and the chain_seq the
        newest checkpoint recorded (None: never). The frozen legacy head comes once."""
        h, m, e = AuditChainHead, AuditChainMark, AuditEvent
        stmt = (
            select(h.chain, h.last_chain_seq, h.last_seq, h.last_hash, e.hash, e.chain, e.chain_seq)
            .add_columns(m.chain_seq)
            .outerjoin(m, m.chain == h.chain)
            .outerjoin(e, e.seq == h.last_seq)
            .where(h.last_chain_seq > 0)
            .where((m.chain_seq.is_(None)) | (m.chain_seq != h.last_chain_seq))
            .order_by(h.chain)
        )
        out = []
        for c, n, s, x, tip_hash, tip_chain, tip_chain_seq, mark in self.session.execute(stmt):
            same = tip_hash == x and tip_chain == c and (c == LEGACY_CHAIN or tip_chain_seq == n)
            out.append((c, n, s, x, same, mark))
        return out

    def add_checkpoint(
        self, checkpoint: AuditCheckpoint, entries: Sequence[tuple[str, int, int, str]]
    ) -> None:
        self.session.add(checkpoint)
        self.session.flush()
        rows = [
            {"checkpoint_seq": checkpoint.seq, "chain": c, "chain_seq": n, "seq": s, "hash": h}
            for c, n, s, h in entries
        ]
        for i in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[i : i + INSERT_CHUNK]
            self.session.execute(insert(AuditCheckpointEntry).values(chunk))
            marks = [
                {
                    "chain": r["chain"],
                    "chain_seq": r["chain_seq"],
                    "checkpoint_seq": r["checkpoint_seq"],
                }
                for r in chunk
            ]
            dialect: Any = postgresql if self._postgres else sqlite
            stmt = dialect.insert(AuditChainMark).values(marks)
            self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[AuditChainMark.chain],
                    set_={
                        "chain_seq": stmt.excluded.chain_seq,
                        "checkpoint_seq": stmt.excluded.checkpoint_seq,
                    },
                )
            )

    def checkpoints(self, after: int = 0, batch: int = 500) -> Iterator[AuditCheckpoint]:
        while True:
            stmt = (
                select(AuditCheckpoint)
                .where(AuditCheckpoint.seq > after)
                .order_by(AuditCheckpoint.seq)
                .limit(batch)
            )
            rows = self.session.execute(stmt).scalars().all()
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def checkpoint(self, seq: int) -> AuditCheckpoint | None:
        return self.session.get(AuditCheckpoint, seq)

    def entries(self, checkpoint_seq: int) -> Sequence[tuple[str, int, int, str]]:
        e = AuditCheckpointEntry
        stmt = select(e.chain, e.chain_seq, e.seq, e.hash).where(e.checkpoint_seq == checkpoint_seq)
        return [(c, n, s, h) for c, n, s, h in self.session.execute(stmt)]

    def newest_entry(self, chain: str) -> AuditCheckpointEntry | None:
        e = AuditCheckpointEntry
        stmt = select(e).where(e.chain == chain).order_by(e.checkpoint_seq.desc()).limit(1)
        return self.session.execute(stmt).scalar_one_or_none()
