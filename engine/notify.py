"""Notifications: payloads and throttling; the outbox that drops nothing is engine/outbox.py.

The addon (after commit) and the watchdog share this core; only storage
differs (the addon keeps the throttle state and the outbox in models, the
watchdog in files)::

    events: new_incident, regression, escalation, approval_needed,
            approval_expired, fix_failed, watchdog_restart (and reminder, made here)
       |
       v
    plan(notes, channels, state, now)       pure: no I/O, no clock
       |  - the channels whose settings accept the event and severity
       |  - a storm of notes for one incident and channel folds into one (+ counts)
       |  - one message per incident and channel within `window`, except a new
       |    decision for a person (escalation, approval, failed fix)
       |  - a reminder every `reminder` while the incident stays open
       |  - at most `cap_per_hour` messages per channel; the rest go in one digest
       v
    payload_for(channel, note)              Mattermost, generic/N8N JSON, e-mail; masked
       |
       v
    Outbox.add --> flush(outbox, channels, now) --> deliver(channel, payload, timeout)
                     |                                 2xx: delivered, removed
                     +-- error: attempts + 1, next try later (30 s, 1 min, 2 min, ... 1 h);
                         after `failing_after` attempts flagged 'failing', never dropped

A storm is one message, with its count:

>>> policy = ThrottlePolicy(window=3600, reminder=6 * 3600, cap_per_hour=20)
>>> channels = [Channel("ops", "mattermost", "http://mm/hooks/x")]
>>> incident = {"id": 7, "pattern": "db_deadlock", "severity": "high",
...             "message": "deadlock detected", "count": 1}
>>> notes = [Notification("new_incident", dict(incident, count=n)) for n in range(1, 51)]
>>> result = plan(notes, channels, {}, now=1000.0, policy=policy)
>>> [(channel.name, note.count, note.incident["count"]) for channel, note in result.messages]
[('ops', 50, 50)]

Ten minutes later, more of the same is held, and said with the next message:

>>> later = plan(notes[:3], channels, result.state, now=1600.0, policy=policy)
>>> later.messages, later.held
([], 3)
>>> reminder = plan([], channels, later.state, now=1000.0 + 6 * 3600,
...                 policy=policy, open_incidents={"incident:7": incident})
>>> [(note.event, note.held) for _, note in reminder.messages]
[('reminder', 3)]
"""

import html
import json
import re
from dataclasses import asdict, dataclass, field, replace

from .health import short_reason
from .patterns import SEVERITIES, SEVERITY_RANK
from .secrets import mask_and_cut, mask_secrets, mask_values

EVENTS = ("new_incident", "regression", "escalation", "approval_needed", "fix_failed",
          "watchdog_restart", "approval_expired")
#: Made by :func:`plan` for incidents still open after ``reminder`` seconds.
REMINDER = "reminder"
DIGEST = "digest"

EVENT_TITLES = {
    "new_incident": "New incident",
    "regression": "Incident came back",
    "escalation": "Escalated: a person must act",
    "approval_needed": "Fix waiting for approval",
    "approval_expired": "Fix approval expired",
    "fix_failed": "Fix failed",
    "watchdog_restart": "Watchdog restarted a service",
    REMINDER: "Still open",
    DIGEST: "More notifications",
}

#: The event a folded storm keeps: the one that asks most of a person.
EVENT_RANK = {"escalation": 7, "fix_failed": 6, "approval_needed": 5, "approval_expired": 4,
              "regression": 3, "watchdog_restart": 2, "new_incident": 1, REMINDER: 0}

#: Events that are sent within the window when they differ from the last one:
#: each carries a decision for a person (an expired approval: decide again).
BYPASS_EVENTS = frozenset({"escalation", "approval_needed", "approval_expired", "fix_failed"})

CHANNEL_KINDS = ("mattermost", "webhook", "email")

USERNAME = "auto_heal"
_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:",
          "medium": ":large_yellow_circle:", "low": ":white_circle:"}


# --------------------------------------------------------------------------
# what is sent, and where


@dataclass
class Notification:
    """One event about one incident (or a watchdog restart).

    *incident* is a dict: ``id``, ``fingerprint``, ``pattern``, ``severity``,
    ``message``, ``count``, ``first_seen``, ``last_seen``, ``state``,
    optionally ``sample`` and ``url``. *fix_run* likewise (``id``,
    ``action``, ``state``, ``error``) when the event is about one. *count* is
    how many events this one stands for (a folded storm), *held* how many
    were held back since the last message.
    """

    event: str
    incident: dict = field(default_factory=dict)
    fix_run: dict | None = None
    database: str = ""
    host: str = ""
    url: str = ""
    key: str = ""
    count: int = 1
    held: int = 0
    events: dict = field(default_factory=dict)  # event -> count, for a folded storm

    def __post_init__(self):
        if self.event not in EVENT_TITLES:
            raise ValueError("unknown event %r" % self.event)
        if not self.key:
            self.key = note_key(self)
        if not self.events:
            self.events = {self.event: self.count}

    @property
    def severity(self):
        severity = (self.incident or {}).get("severity")
        return severity if severity in SEVERITY_RANK else "high"

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def note_key(note):
    """What a notification is about: the throttle groups by it.

    >>> note_key(Notification("new_incident", {"id": 7}))
    'incident:7'
    >>> note_key(Notification("regression", {"fingerprint": "ab12"}))
    'fingerprint:ab12'
    >>> note_key(Notification("watchdog_restart", {"service": "odoo"}, host="erp1"))
    'restart:erp1:odoo'
    """
    incident = note.incident or {}
    if incident.get("id") not in (None, "", False):
        return "incident:%s" % incident["id"]
    if incident.get("fingerprint"):
        return "fingerprint:%s" % incident["fingerprint"]
    return "restart:%s:%s" % (note.host or "-", incident.get("service") or "-")


@dataclass(frozen=True)
class Channel:
    """A destination and what it accepts.

    *events* empty means every event; *min_severity* filters incidents.
    *headers* (an N8N header auth, for instance) are sent as they are and
    never stored in the outbox.
    """

    name: str
    kind: str  # mattermost | webhook | email
    url: str = ""
    events: frozenset = frozenset()
    min_severity: str = "low"
    headers: tuple = ()  # ((name, value), ...)
    timeout: float = 10.0

    def __post_init__(self):
        if self.kind not in CHANNEL_KINDS:
            raise ValueError("channel %s: unknown kind %r" % (self.name, self.kind))
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError("channel %s: unknown severity %r" % (self.name, self.min_severity))
        object.__setattr__(self, "events", frozenset(self.events))
        headers = self.headers.items() if isinstance(self.headers, dict) else self.headers
        object.__setattr__(self, "headers", tuple(tuple(h) for h in headers))

    def accepts(self, note):
        """Whether *note* goes to this channel (a reminder follows its incident's events).

        >>> ch = Channel("ops", "webhook", "http://x", events={"fix_failed"},
        ...              min_severity="high")
        >>> ch.accepts(Notification("fix_failed", {"severity": "critical"}))
        True
        >>> ch.accepts(Notification("fix_failed", {"severity": "medium"}))
        False
        >>> ch.accepts(Notification("new_incident", {"severity": "critical"}))
        False
        """
        if SEVERITY_RANK[note.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        if not self.events or note.event in (REMINDER, DIGEST):
            return True
        return note.event in self.events


# --------------------------------------------------------------------------
# payloads


def _md(text):
    """Plain text safe in Mattermost markdown: no formatting, no @-mentions.

    >>> _md("*bold* @all see [x](y)")
    '\\\\*bold\\\\* @\\u200ball see \\\\[x\\\\](y)'
    """
    text = re.sub(r"([\\`*_~\[\]<>|#])", r"\\\1", str(text))
    return text.replace("@", "@\u200b")


def summary(note):
    """One line that says what happened.

    >>> summary(Notification("new_incident", {"pattern": "db_deadlock", "severity": "high",
    ...                      "message": "deadlock detected", "count": 3}, database="prod"))
    '[high] New incident: db_deadlock on prod: deadlock detected (3 occurrences)'
    """
    incident = note.incident or {}
    what = incident.get("pattern") or incident.get("service") or "auto_heal"
    where = " on %s" % note.database if note.database else ""
    if note.host and not note.database:
        where = " on %s" % note.host
    text = "[%s] %s: %s%s" % (note.severity, EVENT_TITLES[note.event], what, where)
    message = mask_secrets(incident.get("message") or "").split("\n")[0].strip()
    if message:
        text += ": %s" % mask_and_cut(message, 300)
    if incident.get("count"):
        text += " (%s occurrences)" % incident["count"]
    return mask_secrets(text)


def _extra_lines(note):
    lines = []
    if note.fix_run:
        run = note.fix_run
        lines.append("Fix run %s: action %s, state %s%s" % (
            run.get("id", "?"), run.get("action") or "?", run.get("state") or "?",
            (", error: %s" % run["error"]) if run.get("error") else ""))
    if note.count > 1:
        lines.append("%d notifications folded into this one (%s)" % (
            note.count, ", ".join("%s %d" % kv for kv in sorted(note.events.items()))))
    if note.held:
        lines.append("%d more held back since the last message" % note.held)
    incident = note.incident or {}
    if incident.get("first_seen") or incident.get("last_seen"):
        lines.append("First seen %s, last seen %s" % (incident.get("first_seen") or "?",
                                                      incident.get("last_seen") or "?"))
    return lines


def _link(note):
    return (note.incident or {}).get("url") or note.url


def mattermost_payload(note):
    """A Mattermost incoming-webhook body: markdown ``text`` and ``username``.

    >>> body = mattermost_payload(Notification(
    ...     "fix_failed", {"pattern": "cron_stuck", "severity": "critical",
    ...                    "message": "db password=hunter2 rejected"},
    ...     fix_run={"id": 3, "action": "terminate", "state": "failed"}, database="prod",
    ...     url="https://erp/odoo/action-auto_heal.incident/7"))
    >>> print(body["text"])
    :red_circle: **Fix failed**: cron\\_stuck on prod (critical)
    db password=\\*\\*\\* rejected
    Fix run 3: action terminate, state failed
    [Open in Odoo](https://erp/odoo/action-auto_heal.incident/7)
    >>> body["username"]
    'auto_heal'
    """
    incident = note.incident or {}
    what = incident.get("pattern") or incident.get("service") or "auto_heal"
    where = note.database or note.host
    # every part is masked before it is escaped: the escaping must not hide a secret
    lines = ["%s **%s**: %s%s (%s)" % (
        _EMOJI.get(note.severity, ""), EVENT_TITLES[note.event], _md(mask_secrets(what)),
        (" on %s" % _md(mask_secrets(where))) if where else "", note.severity)]
    message = (incident.get("message") or "").strip()
    if message:
        lines.append(_md(mask_and_cut(mask_secrets(message).split("\n")[0], 500)))
    lines += [_md(mask_secrets(line)) for line in _extra_lines(note)]
    # masked whole before it is cut to 20 lines: a key's BEGIN line may be cut away
    sample = mask_secrets(incident.get("sample") or "").strip()
    if sample:
        sample = "\n".join(sample.split("\n")[:20]).replace("```", "'''")
        lines.append("```\n%s\n```" % mask_secrets(sample))
    if _link(note):
        lines.append("[Open in Odoo](%s)" % mask_secrets(_link(note)))
    return {"text": "\n".join(lines), "username": USERNAME}


def json_payload(note):
    """A generic (N8N) JSON body.

    >>> body = json_payload(Notification("regression", {"id": 7, "pattern": "db_deadlock",
    ...                     "severity": "high"}, database="prod", host="erp1"))
    >>> sorted(body)
    ['count', 'database', 'event', 'events', 'fix_run', 'held', 'host', 'incident', \
'summary', 'url']
    >>> body["event"], body["incident"]["id"], body["fix_run"]
    ('regression', 7, None)
    """
    return mask_values({
        "event": note.event,
        "incident": dict(note.incident or {}),
        "fix_run": dict(note.fix_run) if note.fix_run else None,
        "database": note.database,
        "host": note.host,
        "url": _link(note),
        "summary": summary(note),
        "count": note.count,
        "held": note.held,
        "events": dict(note.events),
    })


def email_message(note):
    """``{"subject", "body", "body_html"}`` for the addon's mail (to the Auto-Heal managers).

    >>> mail = email_message(Notification("approval_needed", {"pattern": "cron_stuck",
    ...                      "severity": "high", "message": "<stuck>"}, database="prod"))
    >>> mail["subject"]
    '[auto_heal] Fix waiting for approval: cron_stuck on prod (high)'
    >>> "&lt;stuck&gt;" in mail["body_html"], mail["body"].splitlines()[0]
    (True, '[high] Fix waiting for approval: cron_stuck on prod: <stuck>')
    """
    incident = note.incident or {}
    what = incident.get("pattern") or incident.get("service") or "auto_heal"
    where = note.database or note.host
    subject = "[auto_heal] %s: %s%s (%s)" % (
        EVENT_TITLES[note.event], what, (" on %s" % where) if where else "", note.severity)
    # masked before html.escape(): an escaped quote hides a quoted value from the masker
    lines = [summary(note)] + [mask_secrets(line) for line in _extra_lines(note)]
    sample = mask_secrets(incident.get("sample") or "").strip()
    if _link(note):
        lines.append("Open in Odoo: %s" % _link(note))
    body = "\n".join(lines)
    parts = ["<p>%s</p>" % html.escape(line) for line in lines if not line.startswith("Open ")]
    if sample:
        parts.append("<pre>%s</pre>" % html.escape(mask_secrets(sample)))
        body += "\n\n" + mask_secrets(sample)
    if _link(note):
        parts.append('<p><a href="%s">Open in Odoo</a></p>' % html.escape(_link(note),
                                                                            quote=True))
    return {"subject": mask_secrets(subject), "body": mask_secrets(body),
            "body_html": mask_secrets("\n".join(parts))}


def digest_payload(channel, notes):
    """One message for the *notes* over a channel's hourly cap.

    >>> notes = [Notification("new_incident", {"id": i, "pattern": "x", "severity": "low"})
    ...          for i in range(3)]
    >>> print(digest_payload(Channel("ops", "mattermost", "http://x"), notes)["text"])
    **More notifications**: 3 over this channel's hourly limit
    - \\[low\\] New incident: x
    - \\[low\\] New incident: x
    - \\[low\\] New incident: x
    >>> digest_payload(Channel("n8n", "webhook", "http://x"), notes)["event"]
    'digest'
    """
    lines = [summary(note) for note in notes[:50]]
    if len(notes) > 50:
        lines.append("... and %d more" % (len(notes) - 50))
    head = "%d over this channel's hourly limit" % len(notes)
    if channel.kind == "mattermost":
        text = "**%s**: %s\n" % (EVENT_TITLES[DIGEST], head) + "\n".join(
            "- %s" % _md(line) for line in lines)  # summary() masked each line
        return {"text": text, "username": USERNAME}
    if channel.kind == "email":
        return {"subject": "[auto_heal] %d more notifications" % len(notes),
                "body": mask_secrets("\n".join([head] + lines)),
                "body_html": mask_secrets("<p>%s</p><ul>%s</ul>" % (html.escape(head), "".join(
                    "<li>%s</li>" % html.escape(mask_secrets(line)) for line in lines)))}
    return mask_values({"event": DIGEST, "summary": head,
                  "items": [json_payload(note) for note in notes[:50]],
                  "count": len(notes)})


def payload_for(channel, note):
    """The body of *note* for *channel*'s kind."""
    if channel.kind == "mattermost":
        return mattermost_payload(note)
    if channel.kind == "email":
        return email_message(note)
    return json_payload(note)


# --------------------------------------------------------------------------
# throttling (pure)


@dataclass(frozen=True)
class ThrottlePolicy:
    """One message per incident and channel per *window*; *reminder* while open; a cap."""

    window: float = 3600.0
    reminder: float = 6 * 3600.0
    cap_per_hour: int = 20
    bypass: frozenset = BYPASS_EVENTS
    forget: float = 7 * 86400.0  # state of closed incidents is dropped after this


@dataclass
class Decision:
    send: bool
    reason: str


def decide(entry, event, now, policy=ThrottlePolicy()):
    """Whether to send *event* now, given *entry*, the last message for its incident+channel.

    *entry* is ``{"last_sent", "last_event", "held"}`` or None.

    >>> p = ThrottlePolicy(window=3600)
    >>> decide(None, "new_incident", 0, p).send
    True
    >>> decide({"last_sent": 0, "last_event": "new_incident"}, "regression", 600, p)
    Decision(send=False, reason='sent 10 min ago (window 60 min)')
    >>> decide({"last_sent": 0, "last_event": "new_incident"}, "fix_failed", 600, p).send
    True
    >>> decide({"last_sent": 0, "last_event": "fix_failed"}, "fix_failed", 600, p).send
    False
    >>> decide({"last_sent": 0, "last_event": "new_incident"}, "regression", 3600, p).reason
    'window over'
    """
    if not entry or entry.get("last_sent") is None:
        return Decision(True, "first message")
    elapsed = now - float(entry["last_sent"])
    if event in policy.bypass and event != entry.get("last_event"):
        return Decision(True, "%s is a new decision for a person" % event)
    if elapsed >= policy.window:
        return Decision(True, "window over")
    return Decision(False, "sent %d min ago (window %d min)" % (elapsed // 60,
                                                                policy.window // 60))


@dataclass
class PlanResult:
    """What :func:`plan` decided; ``state`` replaces the caller's."""

    messages: list  # [(Channel, Notification)]
    digests: dict  # channel name -> [Notification], each list one message
    held: int  # notes held back by the window
    state: dict


def fold(notes):
    """Fold *notes* about one incident into one: the most pressing event, the newest data.

    >>> a = Notification("new_incident", {"id": 1, "count": 1})
    >>> b = Notification("escalation", {"id": 1, "count": 9})
    >>> c = Notification("regression", {"id": 1, "count": 12})
    >>> folded = fold([a, b, c])
    >>> folded.event, folded.count, folded.incident["count"], sorted(folded.events.items())
    ('escalation', 3, 12, [('escalation', 1), ('new_incident', 1), ('regression', 1)])
    """
    if len(notes) == 1:
        return notes[0]
    lead = max(notes, key=lambda n: EVENT_RANK.get(n.event, 0))
    newest = notes[-1]
    events = {}
    for note in notes:
        for event, count in note.events.items():
            events[event] = events.get(event, 0) + count
    return replace(lead, incident=dict(newest.incident or {}),
                   fix_run=lead.fix_run or newest.fix_run,
                   count=sum(n.count for n in notes), held=max(n.held for n in notes),
                   events=events)


def plan(notes, channels, state, now, policy=ThrottlePolicy(), open_incidents=None):
    """Decide what to send now. Pure: *state* (a JSON-able dict) is not modified.

    *open_incidents* maps the keys of incidents still open to their dict: a
    reminder goes for each whose last message on a channel is older than
    ``policy.reminder``; the state of the others is forgotten after
    ``policy.forget``.
    """
    state = json.loads(json.dumps(state or {}))
    keys = state.setdefault("keys", {})
    sent = state.setdefault("sent", {})
    channels = list(channels)
    by_name = {channel.name: channel for channel in channels}
    groups = {}
    for note in notes:
        for channel in channels:
            if channel.accepts(note):
                groups.setdefault((note.key, channel.name), []).append(note)
    for key, incident in (open_incidents or {}).items():
        for channel in channels:
            entry = keys.get("%s|%s" % (key, channel.name))
            if (entry and (key, channel.name) not in groups
                    and now - float(entry["last_sent"]) >= policy.reminder):
                note = Notification(REMINDER, dict(incident), key=key,
                                    database=entry.get("database", ""))
                if channel.accepts(note):
                    groups[(key, channel.name)] = [note]
    messages, digests, held = [], {}, 0
    for (key, name), group in groups.items():
        channel, note = by_name[name], fold(group)
        entry = keys.get("%s|%s" % (key, name))
        if not decide(entry, note.event, now, policy).send:
            entry["held"] = int(entry.get("held", 0)) + note.count
            held += note.count
            continue
        note = replace(note, held=int((entry or {}).get("held", 0)))
        recent = [t for t in sent.get(name, []) if now - t < 3600]
        if len(recent) >= policy.cap_per_hour:
            digests.setdefault(name, []).append(note)
        else:
            messages.append((channel, note))
            recent.append(now)
        sent[name] = recent
        keys["%s|%s" % (key, name)] = {"last_sent": now, "last_event": note.event, "held": 0,
                                       "database": note.database}
    for name in digests:
        sent[name] = sent.get(name, []) + [now]
    open_keys = set(open_incidents or ())
    for full_key in list(keys):
        entry = keys[full_key]
        if (full_key.rsplit("|", 1)[0] not in open_keys
                and now - float(entry["last_sent"]) > policy.forget):
            del keys[full_key]
    return PlanResult(messages, digests, held, state)


# --------------------------------------------------------------------------
# delivery


@dataclass
class DeliveryResult:
    ok: bool
    status: int | None
    reason: str  # one line; never the URL's path (it may hold the webhook's secret)


def _where(url):
    """Scheme, host and port of *url*: a webhook's path is its secret.

    >>> _where("https://chat.example.com/hooks/abc123xyz")
    'https://chat.example.com'
    """
    match = re.match(r"^([a-z][a-z0-9+.-]*://)(?:[^@/]*@)?([^/?#]*)", url or "", re.I)
    return (match.group(1) + match.group(2)) if match else "?"


def deliver(channel, payload, timeout=None, delivery_id=None):
    """POST *payload* as JSON to *channel*; 2xx is delivered. Never raises.

    *delivery_id* goes in an ``X-Auto-Heal-Delivery`` header, so a receiver
    can recognise a message sent again after a crash.
    """
    if channel.kind == "email":
        return DeliveryResult(False, None, "e-mail channels are sent through Odoo's mail, "
                                           "not over HTTP")
    if not channel.url:
        return DeliveryResult(False, None, "channel %s has no URL" % channel.name)
    try:
        import requests
    except ImportError:
        return DeliveryResult(False, None, "python package 'requests' is not installed")
    where = _where(channel.url)
    timeout = channel.timeout if timeout is None else timeout
    headers = {"Content-Type": "application/json", "User-Agent": "auto_heal"}
    headers.update(dict(channel.headers))
    if delivery_id:
        headers["X-Auto-Heal-Delivery"] = str(delivery_id)
    try:
        response = requests.post(channel.url, data=json.dumps(payload, default=str),
                                 headers=headers, timeout=timeout, allow_redirects=False)
    except requests.exceptions.Timeout:
        return DeliveryResult(False, None, "%s: no answer within %gs" % (where, timeout))
    except requests.exceptions.ConnectionError as exc:
        reason = short_reason(exc)
        return DeliveryResult(False, None, "%s: connection failed (%s)" % (where, reason))
    except Exception as exc:  # noqa: BLE001 - a bad URL, an encoding error: one line
        return DeliveryResult(False, None, mask_secrets("%s: %s" % (
            where, str(exc).split("\n")[0].replace(channel.url, where))))
    if 200 <= response.status_code < 300:
        return DeliveryResult(True, response.status_code, "HTTP %d" % response.status_code)
    body = " ".join(response.text[:200].split())
    return DeliveryResult(False, response.status_code, mask_secrets("%s: HTTP %d%s" % (
        where, response.status_code, (": " + body) if body else "")))


__all__ = [
    "BYPASS_EVENTS", "CHANNEL_KINDS", "EVENTS", "REMINDER", "SEVERITIES", "Channel",
    "DeliveryResult", "Notification", "PlanResult", "ThrottlePolicy", "decide", "deliver",
    "digest_payload", "email_message", "fold", "json_payload", "mattermost_payload",
    "note_key", "payload_for", "plan", "summary",
]
