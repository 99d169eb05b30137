"""The notification outbox: what was planned waits here until a channel took it.

One home for the outbox of :mod:`engine.notify` (its docstring draws the whole
path): items with attempts and a next try, the retry policy (30 s, 1 min, 2 min,
... 1 h; flagged 'failing' after ``failing_after`` attempts, never dropped), a
memory and a file outbox (the addon keeps its own in a model), :func:`flush` and
:func:`queue`.
"""

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from .fsutil import atomic_write, locked
from .notify import Channel, DeliveryResult, deliver, digest_payload, payload_for
from .secrets import mask_secrets, mask_values

# --------------------------------------------------------------------------
# the outbox


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between attempts grow from *first_delay* by *factor* up to *max_delay*."""

    first_delay: float = 30.0
    factor: float = 2.0
    max_delay: float = 3600.0
    failing_after: int = 10  # attempts: then flagged 'failing' (and still kept)

    def delay(self, attempts):
        """Seconds to wait after the *attempts*-th failed attempt.

        >>> [RetryPolicy().delay(n) for n in (1, 2, 3, 4, 8, 20)]
        [30.0, 60.0, 120.0, 240.0, 3600.0, 3600.0]
        """
        exponent = min(max(attempts, 1) - 1, 64)
        return float(min(self.max_delay, self.first_delay * self.factor ** exponent))


@dataclass
class OutboxItem:
    """A message waiting for its channel."""

    id: str
    channel: str
    payload: dict
    created: float
    next_try: float
    attempts: int = 0
    last_error: str = ""
    state: str = "pending"  # pending | failing (kept, still retried)
    key: str = ""  # the same key is not queued twice while pending
    seq: int = 0  # order of addition: items go out in the order they came

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def new_item(channel, payload, now, key="", seq=0):
    return OutboxItem(id=uuid.uuid4().hex, channel=channel, payload=mask_values(payload),
                      created=now, next_try=now, key=key or "", seq=seq)


def _order(item):
    return (item.created, item.seq, item.id)


def _next_seq(items):
    return max((item.seq for item in items), default=0) + 1


def record_failure(item, reason, now, policy=RetryPolicy()):
    """*item* after a failed attempt: one more attempt, a later next try, the reason.

    >>> item = OutboxItem("i1", "ops", {}, created=0, next_try=0)
    >>> for now in (0, 30, 90):
    ...     item = record_failure(item, "connection refused", now)
    ...     print(item.attempts, item.next_try, item.state)
    1 30.0 pending
    2 90.0 pending
    3 210.0 pending
    >>> record_failure(replace(item, attempts=9), "x", 0).state
    'failing'
    """
    attempts = item.attempts + 1
    return replace(item, attempts=attempts, next_try=now + policy.delay(attempts),
                   last_error=mask_secrets(reason)[:500],
                   state="failing" if attempts >= policy.failing_after else "pending")


class Outbox(Protocol):
    """Storage of :class:`OutboxItem` (the addon implements it on a model)."""

    def add(self, channel, payload, now, key=""):
        """Queue *payload* for *channel*; a pending item with the same *key* is returned."""

    def due(self, now, limit=None):
        """Items whose ``next_try`` has come, oldest first."""

    def update(self, item):
        """Store a changed item."""

    def remove(self, item):
        """Forget a delivered item."""

    def items(self):
        """Every item kept."""


class MemoryOutbox:
    """An :class:`Outbox` in memory (tests, doctests, a reference for the addon's model).

    >>> box = MemoryOutbox()
    >>> a = box.add("ops", {"text": "x"}, now=0, key="incident:7|ops|0")
    >>> box.add("ops", {"text": "x"}, now=1, key="incident:7|ops|0") is a
    True
    >>> [i.id for i in box.due(0)] == [a.id], box.due(-1)
    (True, [])
    """

    def __init__(self):
        self._items = {}

    def add(self, channel, payload, now, key=""):
        if key:
            for item in self._items.values():
                if item.key == key:
                    return item
        item = new_item(channel, payload, now, key, _next_seq(self._items.values()))
        self._items[item.id] = item
        return item

    def due(self, now, limit=None):
        items = sorted((i for i in self._items.values() if i.next_try <= now), key=_order)
        return items[:limit] if limit else items

    def update(self, item):
        self._items[item.id] = item

    def remove(self, item):
        self._items.pop(item.id, None)

    def items(self):
        return sorted(self._items.values(), key=_order)


class FileOutbox:
    """An :class:`Outbox` in a JSON-lines file, for the watchdog.

    Every change rewrites the file atomically (:func:`engine.fsutil.atomic_write`)
    under an exclusive ``flock`` on ``<path>.lock``, so two watchdog
    processes never lose each other's items. The file is created 0600: a
    payload may quote log excerpts. A line that cannot be read is moved to
    ``<path>.bad``, never dropped.

    >>> import tempfile
    >>> box = FileOutbox(os.path.join(tempfile.mkdtemp(), "outbox.jsonl"))
    >>> item = box.add("ops", {"text": "hello"}, now=100.0)
    >>> box.update(record_failure(item, "connection refused", now=100.0))
    >>> [(i.attempts, i.next_try, i.last_error) for i in box.items()]
    [(1, 130.0, 'connection refused')]
    >>> box.due(129.0), len(box.due(130.0))
    ([], 1)
    >>> box.remove(item); box.items()
    []
    """

    def __init__(self, path):
        self.path = path
        self.lock_path = path + ".lock"
        self.bad_path = path + ".bad"

    def _read(self):
        try:
            with open(self.path, "rb") as handle:
                lines = handle.read().split(b"\n")
        except FileNotFoundError:
            return []
        items, bad = [], []
        for line in lines:
            if not line.strip():
                continue
            try:
                items.append(OutboxItem.from_dict(json.loads(line.decode("utf-8"))))
            except (ValueError, TypeError):
                bad.append(line)
        if bad:
            with open(self.bad_path, "ab") as handle:
                handle.write(b"\n".join(bad) + b"\n")
            self._write(items)
        return items

    def _write(self, items):
        data = b"".join(json.dumps(item.to_dict(), sort_keys=True, default=str).encode("utf-8")
                        + b"\n" for item in items)
        atomic_write(self.path, data, mode=None if os.path.exists(self.path) else 0o600)

    def add(self, channel, payload, now, key=""):
        with locked(self.lock_path):
            items = self._read()
            if key:
                for item in items:
                    if item.key == key:
                        return item
            item = new_item(channel, payload, now, key, _next_seq(items))
            self._write(items + [item])
            return item

    def due(self, now, limit=None):
        with locked(self.lock_path):
            items = sorted((i for i in self._read() if i.next_try <= now), key=_order)
        return items[:limit] if limit else items

    def update(self, item):
        with locked(self.lock_path):
            self._write([item if i.id == item.id else i for i in self._read()])

    def remove(self, item):
        with locked(self.lock_path):
            items = self._read()
            kept = [i for i in items if i.id != item.id]
            if len(kept) != len(items):
                self._write(kept)

    def items(self):
        with locked(self.lock_path):
            return sorted(self._read(), key=_order)


@dataclass
class FlushReport:
    delivered: list = field(default_factory=list)  # item ids
    failed: list = field(default_factory=list)  # (item id, reason)
    waiting: int = 0  # items left behind a failed channel this round


def flush(outbox, channels, now=None, send=deliver, timeout=None, policy=RetryPolicy(),
          limit=100):
    """Try the due items of *outbox*, oldest first; a delivered item is removed at once.

    When a channel fails, its other due items are not tried in this round:
    they wait for the same next try (with the reason), without counting an
    attempt, so a dead channel costs one timeout per round. An item whose
    channel is not among *channels* fails with that reason and is kept.

    Delivery is at least once: a process killed between a delivery and its
    removal sends that item again (its ``X-Auto-Heal-Delivery`` id is the same).
    """
    now = time.time() if now is None else now
    by_name = {channel.name: channel for channel in channels}
    report, down = FlushReport(), {}
    for item in outbox.due(now, limit):
        if item.channel in down:
            failed = down[item.channel]
            outbox.update(replace(item, next_try=max(item.next_try, failed.next_try),
                                  last_error="waiting: %s" % failed.last_error
                                  if not failed.last_error.startswith("waiting: ")
                                  else failed.last_error))
            report.waiting += 1
            continue
        channel = by_name.get(item.channel)
        if channel is None:
            result = DeliveryResult(False, None, "no channel named %r in the settings"
                                    % item.channel)
        else:
            result = send(channel, item.payload, timeout, delivery_id=item.id)
        if result.ok:
            outbox.remove(item)
            report.delivered.append(item.id)
            continue
        failed = record_failure(item, result.reason, now, policy)
        outbox.update(failed)
        report.failed.append((item.id, result.reason))
        down[item.channel] = failed
    return report


def queue(outbox, result, now, channels=None):
    """Put the messages and digests of a :class:`PlanResult` in *outbox*; the items.

    E-mail channels are left out: the addon sends them through mail (which
    has its own queue).
    """
    by_name = {channel.name: channel for channel in (channels or [])}
    by_name.update({channel.name: channel for channel, _ in result.messages})
    items = []
    for channel, note in result.messages:
        if channel.kind == "email":
            continue
        items.append(outbox.add(channel.name, payload_for(channel, note), now,
                                key="%s|%s|%s|%s" % (note.key, channel.name, note.event, now)))
    for name, notes in result.digests.items():
        channel = by_name.get(name) or Channel(name, "webhook")
        if channel.kind == "email":
            continue
        items.append(outbox.add(name, digest_payload(channel, notes), now,
                                key="digest|%s|%s" % (name, now)))
    return items
