"""A small JSON-RPC client for Odoo, for ``bin/auto-heal run-approved``.

Odoo answers ``POST /jsonrpc`` with ``{"jsonrpc": "2.0", "method": "call",
"params": {"service", "method", "args"}}``. The watchdog logs in with an API
key used as the password (``common.authenticate``), then calls model methods
with ``object.execute_kw``::

    client = OdooRPC("https://erp.example.com", "prod", "watchdog", api_key)
    client.login()
    runs = client.execute_kw("auto_heal.fix.run", "watchdog_claim", ["host1"])

Every failure is one :class:`RPCError` line: Odoo unreachable, no answer in
time, an HTTP error status, an answer that is not JSON-RPC, a JSON-RPC error
(the exception name and message Odoo sends), a refused login. The API key
never appears in a message.

>>> str(RPCError("x", secret="k3y")) == "x"
True
>>> _error_text({"code": 200, "message": "Odoo Server Error",
...              "data": {"name": "odoo.exceptions.AccessError", "message": "No access"}})
'odoo.exceptions.AccessError: No access'
"""

import itertools
import os

from engine.errors import EngineError
from engine.health import short_reason
from engine.secrets import mask_secrets

DEFAULT_TIMEOUT = 30.0


class RPCError(EngineError):
    """Talking to Odoo failed: one line, secrets masked."""

    def __init__(self, message, secret=None):
        text = " ".join(str(message).split())
        if secret and len(secret) >= 8:  # a short "key" would mask ordinary words
            text = text.replace(secret, "***")
        super().__init__(mask_secrets(text))


def _error_text(error):
    """One line from a JSON-RPC ``error`` object (Odoo puts the real one in ``data``)."""
    if not isinstance(error, dict):
        return str(error)
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    name = data.get("name") or ""
    message = data.get("message") or error.get("message") or "unknown error"
    message = str(message).strip().splitlines()[0] if str(message).strip() else message
    return f"{name}: {message}" if name else str(message)


class OdooRPC:
    """JSON-RPC to one Odoo database as one user, authenticated by an API key."""

    def __init__(self, url, db, login, api_key, timeout=DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/jsonrpc"
        self.db = db
        self.login_name = login
        self._key = api_key
        self.timeout = timeout
        self.uid = None
        self._ids = itertools.count(1)
        self._session = None

    def _post(self, payload):
        try:
            import requests
        except ImportError:
            raise RPCError("run-approved needs the python package requests "
                           "(pip install -r requirements.txt)") from None
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(self.endpoint, json=payload, timeout=self.timeout,
                                          allow_redirects=False)
        except requests.exceptions.Timeout:
            raise RPCError(f"no answer from {self.endpoint} within {self.timeout:g}s",
                           self._key) from None
        except requests.exceptions.ConnectionError as exc:
            reason = short_reason(exc)
            raise RPCError(f"cannot reach {self.endpoint}: {reason}", self._key) from None
        except requests.exceptions.RequestException as exc:
            raise RPCError(f"{self.endpoint}: {exc}", self._key) from None
        if response.status_code != 200:
            raise RPCError(f"HTTP {response.status_code} from {self.endpoint}", self._key)
        try:
            data = response.json()
        except ValueError:
            raise RPCError(f"{self.endpoint} did not answer JSON-RPC (is it Odoo?)",
                           self._key) from None
        if not isinstance(data, dict):
            raise RPCError(f"{self.endpoint} did not answer JSON-RPC (is it Odoo?)", self._key)
        return data

    def call(self, service, method, *args):
        """Call ``service.method(*args)``; its result, or :class:`RPCError`."""
        payload = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                   "params": {"service": service, "method": method, "args": list(args)}}
        data = self._post(payload)
        if data.get("error") is not None:
            raise RPCError(f"Odoo refused {service}.{method}: {_error_text(data['error'])}",
                           self._key)
        if "result" not in data:
            raise RPCError(f"{self.endpoint} did not answer JSON-RPC (is it Odoo?)", self._key)
        return data["result"]

    def login(self):
        """Authenticate; the user id, or :class:`RPCError` when Odoo says no."""
        uid = self.call("common", "authenticate", self.db, self.login_name, self._key, {})
        if not uid:
            raise RPCError(f"login refused for {self.login_name!r} on database {self.db!r} "
                           "(wrong login or API key)", self._key)
        self.uid = uid
        return uid

    def execute_kw(self, model, method, args, kwargs=None):
        """``model.method(*args, **kwargs)`` as the logged-in user."""
        if self.uid is None:
            self.login()
        return self.call("object", "execute_kw", self.db, self.uid, self._key, model, method,
                         list(args), dict(kwargs or {}))


def read_api_key(path):
    """The API key in *path*: a regular file of at most 4 KiB, mode 0600 (or
    stricter) and owned by this process's user, else refused."""
    import stat

    from engine import safefs

    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        raise RPCError("API key file %s: %s" % (path, exc.strerror or exc)) from None
    if stat.S_ISREG(st.st_mode) and (st.st_mode & 0o077 or st.st_uid != os.geteuid()):
        raise RPCError("API key file %s must be mode 0600 and belong to uid %d (it is %04o, "
                       "uid %d): refused" % (path, os.geteuid(), stat.S_IMODE(st.st_mode),
                                             st.st_uid))
    try:
        key = safefs.read_regular(path, "API key file", 4096).decode("utf-8").strip()
    except (EngineError, UnicodeDecodeError) as exc:
        raise RPCError(str(exc)) from None
    if not key:
        raise RPCError("API key file %s is empty" % path)
    return key
