"""The audit log's hash chain: how a link is made, and how the chain is checked.

A link's ``hash`` is HMAC-SHA-256, under a key derived from ``CHAVE_AUDIT_KEY``, of a canonical
JSON array of its place (stream, seq), ``prev_hash`` and every recorded field (time in UTC with
microseconds, event, outcome, citizen id, channel, normalised IP, detail with sorted keys). The
first link of a stream has ``prev_hash`` :data:`GENESIS`. Keyed, the chain cannot be rewritten by
someone who can write to the database but does not hold the key; an operator who also keeps the
heads printed by ``chave audit verify --json`` elsewhere detects a cut tail too (``--anchors``).

Streams: a writer appends to the head of a stream it holds for the rest of its transaction. On
PostgreSQL it takes the first stream whose transaction-level advisory lock is free, so concurrent
transactions never wait for each other here and a stream's links are written one after another.
SQLite serialises writers (IMMEDIATE transactions), so one stream is enough there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from chave.compiled import Compiled

GENESIS = "0" * 64
# Two-int advisory locks (namespace, stream): a space apart from the throttles' one-bigint locks.
_LOCK_NAMESPACE = 0x43484156  # "CHAV"
_TRY_STREAMS = 1024


def _key() -> bytes:
    return hmac.new(settings.CHAVE_AUDIT_KEY.encode(), b"chave-audit-chain-v1", hashlib.sha256).digest()


def _canonical(value):
    """Values as they read back from a JSON column: lists for tuples, str keys, integral floats as ints."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _ip(value) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return str(value)


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def link_hash(*, stream: int, seq: int, prev_hash: str, at: dt.datetime, event: str, outcome: str,
              citizen_id: int | None, channel: str, ip, detail) -> str:
    payload = json.dumps(
        [stream, seq, prev_hash, _time(at), event, outcome or "", citizen_id, channel or "", _ip(ip),
         _canonical(detail or {})],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hmac.new(_key(), payload.encode(), hashlib.sha256).hexdigest()


def hash_of(event) -> str:
    return link_hash(stream=event.stream, seq=event.seq, prev_hash=event.prev_hash, at=event.at, event=event.event,
                     outcome=event.outcome, citizen_id=event.citizen_id, channel=event.channel, ip=event.ip,
                     detail=event.detail)


def claim_stream() -> int:
    """A stream this transaction may append to until it ends (call inside ``transaction.atomic``)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        # Evaluated row by row until one lock is taken: the first free stream, without waiting.
        cursor.execute(
            "SELECT s FROM generate_series(0, %s) AS s WHERE pg_try_advisory_xact_lock(%s, s) LIMIT 1",
            [_TRY_STREAMS - 1, _LOCK_NAMESPACE],
        )
        row = cursor.fetchone()
        if row is not None:
            return row[0]
        # More transactions writing audit events at once than streams tried: queue for one.
        import secrets

        stream = secrets.randbelow(_TRY_STREAMS)
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, stream])
        return stream


def _last_link(stream):
    from .models import AuditEvent

    return AuditEvent.objects.filter(stream=stream).order_by("-seq").values_list("seq", "hash")[:1]


_HEAD = Compiled(_last_link, int, values=True)


def head(stream: int) -> tuple[int, str]:
    """(seq, hash) of the stream's last link, read after the stream was claimed; (0, GENESIS) when empty."""
    last = _HEAD.first(stream)
    return last if last is not None else (0, GENESIS)


@dataclass
class StreamReport:
    stream: int
    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    breaks: list[str] = field(default_factory=list)


@dataclass
class Verification:
    streams: dict[int, StreamReport]

    @property
    def ok(self) -> bool:
        return not any(report.breaks for report in self.streams.values())

    @property
    def events(self) -> int:
        return sum(report.events for report in self.streams.values())

    def heads(self) -> dict[str, dict]:
        return {str(s): {"seq": r.head_seq, "hash": r.head_hash} for s, r in sorted(self.streams.items())}


def verify(*, anchors: dict | None = None, max_breaks: int = 20) -> Verification:
    """Check every stream link by link: places numbered 1, 2, 3…, each ``prev_hash`` the previous
    link's ``hash``, each ``hash`` what its fields give. ``anchors`` (heads from an earlier run,
    ``{stream: {"seq", "hash"}}``) must still be there, unchanged."""
    from .models import AuditEvent

    reports: dict[int, StreamReport] = {}
    rows = (AuditEvent.objects.order_by("stream", "seq")
            .only("id", "stream", "seq", "prev_hash", "hash", "at", "event", "outcome", "citizen_id", "channel",
                  "ip", "detail"))
    for event in rows.iterator(chunk_size=2000):
        report = reports.setdefault(event.stream, StreamReport(event.stream))
        report.events += 1
        expected_seq = report.head_seq + 1
        problems = []
        if event.seq != expected_seq:
            problems.append(f"is at place {event.seq} where {expected_seq} was expected (events missing or added)")
        if event.prev_hash != report.head_hash:
            problems.append("does not follow the link before it")
        if not hmac.compare_digest(event.hash, hash_of(event)):
            problems.append("was changed after it was written (its hash does not match its content)")
        if problems and len(report.breaks) < max_breaks:
            report.breaks.append(f"stream {event.stream}, event {event.pk} ({event.event}, {_time(event.at)}): "
                                 + "; ".join(problems))
        report.head_seq, report.head_hash = event.seq, event.hash
    for stream, anchor in (anchors or {}).items():
        stream = int(stream)
        found = (AuditEvent.objects.filter(stream=stream, seq=int(anchor["seq"])).values_list("hash", flat=True)
                 .first())
        report = reports.setdefault(stream, StreamReport(stream))
        if found is None:
            report.breaks.append(f"stream {stream}: the anchored event at place {anchor['seq']} is gone "
                                 "(the end of the log was cut)")
        elif not hmac.compare_digest(found, str(anchor["hash"])):
            report.breaks.append(f"stream {stream}: the anchored event at place {anchor['seq']} is not the one "
                                 "anchored (the log was rewritten)")
    return Verification(reports)
