"""A private PostgreSQL cluster for tests and for ``make run``.

Temporary (the default) or persistent::

    with PgCluster() as pg:                      # initdb in a temporary folder
        subprocess.run(["psql", "-c", "select 1"], env={**os.environ, **pg.env()})

    with PgCluster(datadir=".run/pg", keep=True) as pg:   # survives, for make run
        ...

Layout of the cluster folder ``base``::

    base/data/             PGDATA (owned by the ``postgres`` OS user when we are root)
    base/.s.PGSQL.<port>   the unix socket (superuser access, trust)
    base/postgres.log      the server log
    base/auth.json         role, password (persistent mode only, mode 0600)

The server listens on 127.0.0.1 only, on a free port. Local socket connections
are trusted (used as the ``postgres`` superuser by this module); TCP connections
need the password of the cluster's own role (``auto_heal`` by default,
LOGIN CREATEDB: Odoo refuses to run as ``postgres``). Everything started is
stopped on exit, also on Ctrl-C and SIGTERM; a temporary cluster is removed.

``initdb`` and ``postgres`` refuse to run as root: when we are root they run as
the ``postgres`` OS user (``subprocess``'s ``user=``), otherwise as ourselves.

This module is plain Python (standard library only): pytest fixtures can reuse
it, e.g. ``pg.pg_ctl("stop", "-m", "immediate")`` then ``pg.start()``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from tools.proc import free_port, port_in_use, raise_interrupted, signals_ignored

HOST = "127.0.0.1"
SUPERUSER = "postgres"
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin

INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql), "
    "or set AUTO_HEAL_PG_BINDIR to the folder holding initdb"
)


class PgError(RuntimeError):
    """A one-line, user-facing error about the private cluster."""


def _version_key(path: str):
    match = re.search(r"/(\d+)(?:\.(\d+))?/bin$", path)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def find_bindir() -> str:
    """Folder with PostgreSQL's server binaries (initdb, pg_ctl, postgres).

    Order: ``AUTO_HEAL_PG_BINDIR``, ``pg_config --bindir``, the newest
    ``/usr/lib/postgresql/*/bin``, then ``initdb`` on PATH.
    """

    def ok(folder):
        exes = ("initdb", "pg_ctl", "postgres")
        return folder and all(os.access(os.path.join(folder, exe), os.X_OK) for exe in exes)

    override = os.environ.get("AUTO_HEAL_PG_BINDIR")
    if override:
        if ok(override):
            return override
        raise PgError(f"AUTO_HEAL_PG_BINDIR={override} holds no initdb/pg_ctl/postgres")
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(os.path.realpath(initdb)))
    for folder in candidates:
        if ok(folder):
            return folder
    raise PgError(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: {INSTALL_HINT}"
    )


class PgCluster:
    """A private PostgreSQL cluster; see the module docstring.

    :param datadir: cluster folder for a persistent cluster (created when
        missing, reused when it holds one); None for a temporary folder.
    :param keep: keep the folder on exit (the server is stopped anyway).
    :param role: name of the cluster's own LOGIN CREATEDB role.
    :param fast: fsync off and friends; default: on for temporary clusters.
    :param handle_signals: in the context manager, turn SIGTERM/SIGHUP into
        :class:`tools.proc.Interrupted` so that ``__exit__`` cleans up.
    :param settings: more server settings, e.g. ``{"max_prepared_transactions": 5,
        "wal_level": "logical"}`` (written to ``auto_heal.conf`` at each start).
    """

    def __init__(self, datadir=None, keep=False, role="auto_heal", bindir=None, fast=None,
                 handle_signals=True, settings=None):
        self.bindir = bindir or find_bindir()
        self.temporary = datadir is None
        self.base = None if datadir is None else Path(datadir).resolve()
        self.keep = keep
        self.role = role
        self.fast = self.temporary if fast is None else fast
        self.handle_signals = handle_signals
        self.settings = dict(settings or {})
        for key in self.settings:
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", key):
                raise PgError(f"not a PostgreSQL setting name: {key!r}")
        self.port = None
        self.password = None
        self.socket_dir = None
        self._own_socket_dir = None
        self._old_handlers = {}
        self._pg_user = None
        if os.geteuid() == 0:
            try:
                self._pg_user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PgError(
                    "running as root but there is no 'postgres' OS user to run the server: "
                    f"{INSTALL_HINT} (it creates that user), or run as a normal user"
                ) from None

    # -- paths -------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    @property
    def _conf(self) -> Path:
        return self.datadir / "auto_heal.conf"

    @property
    def _auth(self) -> Path:
        return self.base / "auth.json"

    # -- connection info ---------------------------------------------------
    @property
    def host(self) -> str:
        return HOST

    @property
    def user(self) -> str:
        return self.role

    def dsn_for(self, dbname: str = "postgres") -> str:
        """libpq keyword/value string for the cluster's own role over TCP."""
        return (
            f"host={HOST} port={self.port} user={self.role} password={self.password} "
            f"dbname={dbname}"
        )

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def env(self, dbname: str = "postgres") -> dict:
        """libpq environment for the cluster's own role over TCP."""
        return {
            "PGHOST": HOST,
            "PGPORT": str(self.port),
            "PGUSER": self.role,
            "PGPASSWORD": self.password,
            "PGDATABASE": dbname,
        }

    def superuser_env(self, dbname: str = "postgres") -> dict:
        """libpq environment for the ``postgres`` superuser over the unix socket."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": dbname,
        }

    # -- running things ----------------------------------------------------
    def _run_as_server_user(self, args, **kwargs):
        """Run a server binary as the postgres OS user when we are root."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("cwd", str(self.base))
        # own session: a Ctrl-C in the terminal must not reach the postmaster
        kwargs.setdefault("start_new_session", True)
        if self._pg_user:
            kwargs.update(user=self._pg_user.pw_uid, group=self._pg_user.pw_gid, extra_groups=[])
            env = dict(kwargs.pop("env", None) or os.environ)
            env.update(HOME=self._pg_user.pw_dir, USER=SUPERUSER, LOGNAME=SUPERUSER)
            kwargs["env"] = env
        return subprocess.run(args, **kwargs)

    def pg_ctl(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``pg_ctl -D <datadir> *args`` as the server user; returns the result.

        ``start`` and ``restart`` get ``-l <logfile>`` unless given, so that the
        server never holds our pipes open.
        """
        args = list(args)
        if ("start" in args or "restart" in args) and "-l" not in args:
            args += ["-l", str(self.logfile)]
        return self._run_as_server_user(
            [os.path.join(self.bindir, "pg_ctl"), "-D", str(self.datadir), *args], timeout=timeout
        )

    def is_running(self) -> bool:
        if self.base is None or not (self.datadir / "PG_VERSION").exists():
            return False
        return self.pg_ctl("status", timeout=30).returncode == 0

    def psql(self, sql: str, dbname: str = "postgres", superuser: bool = True) -> str:
        """Run one SQL string with psql; returns its unaligned, tuples-only output."""
        env = dict(os.environ)
        env.update(self.superuser_env(dbname) if superuser else self.env(dbname))
        res = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-c", sql],
            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
        )
        if res.returncode:
            raise PgError(f"psql failed on {dbname}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout.strip()

    def database_exists(self, dbname: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = {_literal(dbname)}") == "1"

    def drop_database(self, dbname: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_ident(dbname)} WITH (FORCE)")

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> PgCluster:
        """Create (when needed) and start the cluster, then ensure the role."""
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="auto_heal-pg-"))
        atexit.register(self._atexit)
        self.base.mkdir(parents=True, exist_ok=True)
        if self._pg_user:
            os.chown(self.base, self._pg_user.pw_uid, self._pg_user.pw_gid)
            self.base.chmod(0o700)
            if self._run_as_server_user(["test", "-w", str(self.base)], cwd="/").returncode:
                raise PgError(
                    f"the postgres OS user cannot write to {self.base} (a parent folder is not "
                    "open to others); put the cluster under /tmp or /var/tmp"
                )
        self._load_auth()
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            self._read_conf()  # a server left running by an earlier session: adopt it
        else:
            self._write_conf()
            res = self.pg_ctl("start", "-w", "-t", "90")
            if res.returncode:
                raise PgError(
                    f"PostgreSQL did not start (pg_ctl exit {res.returncode}); "
                    f"last log line: {_last_line(self.logfile) or res.stderr.strip()}"
                )
        self._ensure_role()
        return self

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and remove a non-kept folder."""
        if self.base is None:
            return
        with signals_ignored() if _main_thread() else contextlib.nullcontext():
            try:
                if self.is_running():
                    res = self.pg_ctl("stop", "-m", "fast", "-w", "-t", "30", timeout=60)
                    if res.returncode:
                        self.pg_ctl("stop", "-m", "immediate", "-w", "-t", "30", timeout=60)
            finally:
                atexit.unregister(self._atexit)
                if self._own_socket_dir:
                    shutil.rmtree(self._own_socket_dir, ignore_errors=True)
                    self._own_socket_dir = None
                if not self.keep:
                    shutil.rmtree(self.base, ignore_errors=True)
                    if self.temporary:
                        self.base = None

    def _atexit(self):
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> PgCluster:
        if self.handle_signals and _main_thread():
            # the handler ignores every later signal (bounded clean-up): keep all three
            self._old_handlers = {
                sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            }
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, raise_interrupted)
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
            self._old_handlers = {}

    # -- internals ---------------------------------------------------------
    def _load_auth(self):
        if self.password:
            return  # started again after a stop: same role, same password
        if self._auth.exists():
            data = json.loads(self._auth.read_text())
            if data.get("role") == self.role:
                self.password = data["password"]
                return
        self.password = secrets.token_urlsafe(18)
        if not self.temporary or self.keep:
            fd = os.open(self._auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"role": self.role, "password": self.password}, fh)

    def _initdb(self):
        args = [
            os.path.join(self.bindir, "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
        ]
        if self.fast:
            args.append("--no-sync")
        res = self._run_as_server_user(args, timeout=300)
        if res.returncode:
            tail = (res.stderr or res.stdout).strip().splitlines()
            last = tail[-1] if tail else f"exit {res.returncode}"
            raise PgError(f"initdb failed in {self.datadir}: {last}")
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write("\n# auto_heal: port, socket and listen address, rewritten at each start\n"
                     "include_if_exists = 'auto_heal.conf'\n")

    def _socket_dir_for(self, port: int) -> Path:
        if len(f"{self.base}/.s.PGSQL.{port}") <= _SOCKET_MAX:
            return self.base
        self._own_socket_dir = Path(tempfile.mkdtemp(prefix="ah-pgs-", dir="/tmp"))
        if self._pg_user:
            os.chown(self._own_socket_dir, self._pg_user.pw_uid, self._pg_user.pw_gid)
        return self._own_socket_dir

    def _write_conf(self):
        port = self._conf_port()
        if port is None or port_in_use(port):
            port = free_port(HOST)
        self.port = port
        self.socket_dir = self._socket_dir_for(port)
        lines = [
            f"port = {port}",
            f"listen_addresses = '{HOST}'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "unix_socket_permissions = 0700",
        ]
        if self.fast:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        lines += [f"{key} = {_conf_value(value)}" for key, value in self.settings.items()]
        self._conf.write_text("\n".join(lines) + "\n")
        if self._pg_user:
            os.chown(self._conf, self._pg_user.pw_uid, self._pg_user.pw_gid)

    def _conf_port(self):
        if not self._conf.exists():
            return None
        match = re.search(r"^port = (\d+)$", self._conf.read_text(), re.M)
        return int(match.group(1)) if match else None

    def _read_conf(self):
        text = self._conf.read_text()
        self.port = self._conf_port()
        self.socket_dir = Path(re.search(r"^unix_socket_directories = '(.*)'$", text, re.M)[1])

    def _ensure_role(self):
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = {_literal(self.role)}") == "1"
        verb = "ALTER" if exists else "CREATE"
        self.psql(
            f"{verb} ROLE {_ident(self.role)} LOGIN CREATEDB PASSWORD {_literal(self.password)}"
        )


def _conf_value(value) -> str:
    """A postgresql.conf value: numbers and booleans bare, the rest quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # manual check: python -m tools.pgcluster
    with PgCluster() as cluster:
        print(cluster.dsn)
        print(cluster.psql("select version()"))
