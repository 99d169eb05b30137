"""Notifications against a real HTTP server in a process of its own.

The server records every POST it receives (path, headers, body) as a JSON
line; ``/fail`` answers 500 and ``/slow`` answers late. Nothing is mocked:
payloads go through requests, sockets and the outbox file.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from engine.notify import Channel, Notification, ThrottlePolicy, deliver, plan
from engine.outbox import FileOutbox, MemoryOutbox, RetryPolicy, flush, queue
from tools.proc import free_port

SERVER = textwrap.dedent("""
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port, log = int(sys.argv[1]), sys.argv[2]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/slow"):
                time.sleep(3)
            with open(log, "a") as handle:
                handle.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                         "body": body.decode()}) + "\\n")
            status = 500 if self.path.startswith("/fail") else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"boom: db password=hunter2" if status == 500 else b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()
""")


class Server:
    """The recording HTTP server, as a real process."""

    def __init__(self, tmp_path, port=None):
        self.port = port or free_port("127.0.0.1")
        self.script = tmp_path / "server.py"
        self.script.write_text(SERVER)
        self.log = tmp_path / ("requests-%d.jsonl" % self.port)
        self.process = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, str(self.script), str(self.port), str(self.log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.strip() == "ready", self.process.stderr.read()
        return self

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process.stdout.close()
            self.process.stderr.close()
            self.process = None

    def requests(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path).start()
    yield started
    started.stop()


def incident(ident, **values):
    data = {"id": ident, "fingerprint": "fp%s" % ident, "pattern": "db_deadlock",
            "severity": "high", "message": "deadlock detected", "count": 1,
            "first_seen": "2026-11-29 10:00:00", "last_seen": "2026-11-29 10:00:00",
            "state": "new", "url": "https://erp.example.com/odoo/auto-heal/%s" % ident}
    data.update(values)
    return data


def test_mattermost_and_json_payloads_arrive(server, tmp_path):
    channels = [
        Channel("mm", "mattermost", server.url("/hooks/s3cr3tk3y")),
        Channel("n8n", "webhook", server.url("/webhook/auto-heal"),
                headers={"X-N8N-Auth": "n8n-token-1"}),
    ]
    note = Notification(
        "fix_failed",
        incident(7, pattern="cron_stuck", severity="critical",
                 message="cron 'Mail' stuck", sample="connect postgresql://odoo:pw1@db/prod"),
        fix_run={"id": 3, "action": "terminate_backend", "state": "failed",
                 "error": "password=pw2 rejected"},
        database="prod", host="erp1")
    result = plan([note], channels, {}, now=1000.0)
    outbox = FileOutbox(str(tmp_path / "outbox.jsonl"))
    items = queue(outbox, result, now=1000.0)
    # the outbox file holds no secret and no webhook URL
    stored = (tmp_path / "outbox.jsonl").read_text()
    assert "pw1" not in stored and "pw2" not in stored and "s3cr3tk3y" not in stored
    assert oct(os.stat(tmp_path / "outbox.jsonl").st_mode & 0o777) == "0o600"
    report = flush(outbox, channels, now=1000.0)
    assert sorted(report.delivered) == sorted(item.id for item in items)
    assert outbox.items() == []
    received = {r["path"]: r for r in server.requests()}
    assert set(received) == {"/hooks/s3cr3tk3y", "/webhook/auto-heal"}

    mattermost = received["/hooks/s3cr3tk3y"]
    body = json.loads(mattermost["body"])
    assert sorted(body) == ["text", "username"] and body["username"] == "auto_heal"
    text = body["text"]
    assert text.startswith(":red_circle: **Fix failed**: cron\\_stuck on prod (critical)")
    assert "```\nconnect postgresql://odoo:***@db/prod\n```" in text and "pw1" not in text
    assert "[Open in Odoo](https://erp.example.com/odoo/auto-heal/7)" in text
    assert mattermost["headers"]["Content-Type"] == "application/json"

    webhook = received["/webhook/auto-heal"]
    body = json.loads(webhook["body"])
    assert body["event"] == "fix_failed"
    assert (body["database"], body["host"]) == ("prod", "erp1")
    assert body["incident"]["id"] == 7 and body["incident"]["pattern"] == "cron_stuck"
    assert body["fix_run"] == {"id": 3, "action": "terminate_backend", "state": "failed",
                               "error": "password=*** rejected"}
    assert body["url"] == "https://erp.example.com/odoo/auto-heal/7"
    assert webhook["headers"]["X-N8N-Auth"] == "n8n-token-1"
    ids = {r["headers"]["X-Auto-Heal-Delivery"] for r in server.requests()}
    assert ids == {item.id for item in items}


def test_a_storm_is_one_message_and_the_window_holds_the_rest(server):
    channels = [Channel("n8n", "webhook", server.url("/hook"))]
    policy = ThrottlePolicy(window=3600, reminder=6 * 3600)
    outbox = MemoryOutbox()
    storm = [Notification("new_incident", incident(7, count=n), database="prod")
             for n in range(1, 201)]
    first = plan(storm, channels, {}, now=0.0, policy=policy)
    queue(outbox, first, now=0.0)
    flush(outbox, channels, now=0.0)
    [message] = [json.loads(r["body"]) for r in server.requests()]
    assert (message["count"], message["incident"]["count"]) == (200, 200)

    # ten minutes later: more findings and a regression; all held
    later = [Notification("regression", incident(7, count=250))] * 50
    held = plan(later, channels, first.state, now=600.0, policy=policy)
    assert held.messages == [] and held.held == 50
    queue(outbox, held, now=600.0)
    flush(outbox, channels, now=600.0)
    assert len(server.requests()) == 1

    # a failed fix is a new decision for a person: it goes at once
    failed = plan([Notification("fix_failed", incident(7), fix_run={"id": 1})], channels,
                  held.state, now=700.0, policy=policy)
    assert [note.event for _, note in failed.messages] == ["fix_failed"]
    assert failed.messages[0][1].held == 50

    # after the window, the next finding goes again
    after = plan([Notification("regression", incident(7, count=300))], channels, failed.state,
                 now=700.0 + 3600, policy=policy)
    queue(outbox, after, now=700.0 + 3600)
    flush(outbox, channels, now=700.0 + 3600)
    assert [json.loads(r["body"])["event"] for r in server.requests()] == [
        "new_incident", "regression"]

    # still open 6 hours after the last message: a reminder, only for open incidents
    quiet = 700.0 + 3600 + 6 * 3600
    reminded = plan([], channels, after.state, now=quiet, policy=policy,
                    open_incidents={"incident:7": incident(7, count=300)})
    assert [note.event for _, note in reminded.messages] == ["reminder"]
    closed = plan([], channels, after.state, now=quiet, policy=policy, open_incidents={})
    assert closed.messages == []


def test_cap_per_channel_and_a_digest_for_the_rest(server):
    channels = [Channel("mm", "mattermost", server.url("/hooks/a"))]
    policy = ThrottlePolicy(cap_per_hour=5)
    notes = [Notification("new_incident", incident(i)) for i in range(8)]
    result = plan(notes, channels, {}, now=0.0, policy=policy)
    assert len(result.messages) == 5 and len(result.digests["mm"]) == 3
    outbox = MemoryOutbox()
    queue(outbox, result, now=0.0)
    report = flush(outbox, channels, now=0.0)
    assert len(report.delivered) == 6
    texts = [json.loads(r["body"])["text"] for r in server.requests()]
    assert texts[-1].startswith("**More notifications**: 3 over this channel's hourly limit")
    # the same hour: another new incident goes to a digest too, nothing is dropped
    more = plan([Notification("new_incident", incident(99))], channels, result.state,
                now=60.0, policy=policy)
    assert more.messages == [] and [n.incident["id"] for n in more.digests["mm"]] == [99]


def test_outbox_keeps_everything_while_the_channel_is_down(tmp_path):
    down = Server(tmp_path)  # its port is free: nothing listens yet
    channels = [Channel("n8n", "webhook", down.url("/hook/t0ken"), timeout=2)]
    outbox = FileOutbox(str(tmp_path / "outbox.jsonl"))
    policy = RetryPolicy(first_delay=30, factor=2, max_delay=3600, failing_after=4)
    for ident in (1, 2, 3):
        outbox.add("n8n", {"event": "new_incident", "incident": {"id": ident}}, now=0.0)

    moments, next_tries = [0.0], []
    for _ in range(5):
        report = flush(outbox, channels, now=moments[-1], policy=policy)
        assert report.delivered == [] and len(report.failed) == 1 and report.waiting == 2
        head = outbox.items()[0]
        assert "connection failed (Connection refused)" in head.last_error
        assert "t0ken" not in head.last_error
        next_tries.append(head.next_try)
        assert flush(outbox, channels, now=head.next_try - 1, policy=policy).failed == []
        moments.append(head.next_try)
    delays = [b - a for a, b in zip(moments, next_tries, strict=False)]
    assert delays == [30.0, 60.0, 120.0, 240.0, 480.0]  # growing
    items = outbox.items()
    assert len(items) == 3  # nothing dropped
    assert (items[0].attempts, items[0].state) == (5, "failing")  # flagged, still kept
    assert all(i.attempts == 0 and i.last_error.startswith("waiting: ") for i in items[1:])
    assert all(i.next_try == items[0].next_try for i in items)

    down.start()  # the channel comes back
    try:
        report = flush(outbox, channels, now=items[0].next_try, policy=policy)
        assert len(report.delivered) == 3 and report.failed == []
        assert outbox.items() == []
        bodies = [json.loads(r["body"]) for r in down.requests()]
        assert [b["incident"]["id"] for b in bodies] == [1, 2, 3]  # in order
        # nothing is sent twice
        assert flush(outbox, channels, now=items[0].next_try + 10000).delivered == []
        assert len(down.requests()) == 3
        assert len({r["headers"]["X-Auto-Heal-Delivery"] for r in down.requests()}) == 3
    finally:
        down.stop()


def test_http_errors_and_timeouts_are_one_line_reasons(server):
    failing = Channel("n8n", "webhook", server.url("/fail/s3cr3t"))
    result = deliver(failing, {"event": "x"}, timeout=5)
    assert (result.ok, result.status) == (False, 500)
    assert result.reason == "http://127.0.0.1:%d: HTTP 500: boom: db password=***" % server.port
    slow = Channel("n8n", "webhook", server.url("/slow/s3cr3t"))
    result = deliver(slow, {"event": "x"}, timeout=0.5)
    assert (result.ok, result.reason) == (
        False, "http://127.0.0.1:%d: no answer within 0.5s" % server.port)
    bad = Channel("n8n", "webhook", "htp://nowhere/s3cr3t")
    result = deliver(bad, {"event": "x"})
    assert not result.ok and "s3cr3t" not in result.reason and "\n" not in result.reason
    email = deliver(Channel("managers", "email"), {"subject": "x"})
    assert not email.ok and "mail" in email.reason


def test_failed_delivery_keeps_the_item_with_the_server_reason(server):
    channels = [Channel("n8n", "webhook", server.url("/fail/x"))]
    outbox = MemoryOutbox()
    item = outbox.add("n8n", {"event": "new_incident"}, now=0.0)
    report = flush(outbox, channels, now=0.0)
    assert report.failed == [(item.id, "http://127.0.0.1:%d: HTTP 500: boom: db password=***"
                              % server.port)]
    [kept] = outbox.items()
    assert (kept.attempts, kept.next_try) == (1, 30.0)
    # a channel removed from the settings: kept too, with the reason
    report = flush(outbox, [], now=30.0)
    assert report.failed == [(item.id, "no channel named 'n8n' in the settings")]
    assert outbox.items()[0].attempts == 2


def _add_many(path, prefix, count):
    box = FileOutbox(path)
    for index in range(count):
        box.add("n8n", {"n": "%s-%d" % (prefix, index)}, now=float(index))


def test_file_outbox_two_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(path, name, 40)) for name in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    payloads = sorted(item.payload["n"] for item in FileOutbox(path).items())
    assert payloads == sorted("%s-%d" % (p, i) for p in "ab" for i in range(40))


def test_file_outbox_keeps_a_line_it_cannot_read(tmp_path):
    path = tmp_path / "outbox.jsonl"
    box = FileOutbox(str(path))
    box.add("n8n", {"n": 1}, now=0.0)
    with open(path, "a") as handle:
        handle.write('{"id": "half-writ\n')
    assert [i.payload for i in box.items()] == [{"n": 1}]
    assert (tmp_path / "outbox.jsonl.bad").read_text() == '{"id": "half-writ\n'
    assert len(path.read_text().splitlines()) == 1


def test_email_channels_are_planned_but_not_queued():
    channels = [Channel("managers", "email", min_severity="high"),
                Channel("n8n", "webhook", "http://127.0.0.1:9/x")]
    notes = [Notification("approval_needed", incident(1), fix_run={"id": 5}),
             Notification("new_incident", incident(2, severity="low"))]
    result = plan(notes, channels, {}, now=0.0)
    assert sorted((c.name, n.incident["id"]) for c, n in result.messages) == [
        ("managers", 1), ("n8n", 1), ("n8n", 2)]
    outbox = MemoryOutbox()
    items = queue(outbox, result, now=0.0)
    assert [i.channel for i in items] == ["n8n", "n8n"]
    # queueing the same plan twice adds nothing
    queue(outbox, result, now=0.0)
    assert len(outbox.items()) == 2
