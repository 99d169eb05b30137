"""systemd notifications (``Type=notify``, ``WatchdogSec=``) without a dependency.

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace) to a ``Type=notify`` service; the service sends datagrams such as
``READY=1``, ``WATCHDOG=1`` and ``STATUS=...`` to it. With ``WatchdogSec=``
systemd kills and restarts the service when ``WATCHDOG=1`` does not arrive in
time: the watchdog of the watchdog.

``bin/auto-heal monitor`` sends ``READY=1`` after its first cycle,
``WATCHDOG=1`` after every cycle and a ``STATUS=`` line when its status
changes. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.

>>> import socket, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "notify")
>>> server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); server.bind(path)
>>> notifier = Notifier({"NOTIFY_SOCKET": path})
>>> notifier.ready("cycle 1: healthy")
True
>>> server.recv(256)
b'READY=1\\nSTATUS=cycle 1: healthy'
>>> Notifier({}).watchdog()
False
"""

import contextlib
import os
import socket
import threading


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET`` when systemd gave one."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET") or ""
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        usec = environ.get("WATCHDOG_USEC") or ""
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() else None
        self.last_status = None
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return bool(self.address)

    def send(self, *lines):
        """Send ``KEY=value`` lines as one datagram; False when not under systemd."""
        if not self.address:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.connect(self.address)
                    sock.sendall(data)
            except OSError:
                return False  # systemd went away: nothing to tell
        return True

    def ready(self, status=None):
        return self.send("READY=1", *self._status_line(status))

    def watchdog(self, status=None):
        return self.send("WATCHDOG=1", *self._status_line(status))

    def status(self, text):
        lines = self._status_line(text)
        return self.send(*lines) if lines else False

    def stopping(self, status=None):
        return self.send("STOPPING=1", *self._status_line(status))

    def _status_line(self, text):
        if text is None or text == self.last_status:
            return []
        self.last_status = text
        return ["STATUS=" + " ".join(str(text).split())[:200]]

    @contextlib.contextmanager
    def keepalive(self, seconds, every=None):
        """Keep sending ``WATCHDOG=1`` for at most *seconds* while a bounded step runs.

        A restart verification may wait longer than ``WatchdogSec``; the step
        has its own timeout, and the pings stop at *seconds* whatever happens,
        so a step that hangs past its bound still lets systemd act.
        """
        if not self.address:
            yield
            return
        every = every or max(1.0, (self.watchdog_seconds or 30.0) / 3)
        stop = threading.Event()

        def ping():
            deadline = seconds
            while deadline > 0 and not stop.wait(min(every, deadline)):
                deadline -= every
                self.send("WATCHDOG=1")

        thread = threading.Thread(target=ping, name="sd-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
