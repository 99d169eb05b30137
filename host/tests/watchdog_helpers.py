"""Helpers of the watchdog's fault-injection tests: a fake Odoo, a monitor process,
TOML configs, and the file the measured times go to (``.tmp/fault-times.json``)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tools import fake_odoo

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(REPO, "bin", "auto-heal")
FAKE = fake_odoo.SCRIPT
TIMES = os.path.join(REPO, ".tmp", "fault-times.json")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout, step=0.1, what="condition"):
    """Poll *condition* until it is truthy; its value, or AssertionError after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def http_status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def record_time(fault, seconds, **details):
    """Print and keep the measured time from injection to healthy (for the lead's report)."""
    print(f"fault {fault}: healthy after {seconds:.1f}s", flush=True)
    os.makedirs(os.path.dirname(TIMES), exist_ok=True)
    try:
        with open(TIMES, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    data[fault] = dict(seconds=round(seconds, 2), measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                       **details)
    with open(TIMES + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(TIMES + ".tmp", TIMES)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(data, prefix=""):
    """A small TOML writer for test configs (tables, strings, numbers, lists)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + to_toml(value, name)
    return out


def merge(base, extra):
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


class FakeOdoo:
    """The fake Odoo server of tools/fake_odoo.py, started like a service (--daemon)."""

    def __init__(self, folder, dsn=None, config=None):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pidfile = os.path.join(self.folder, "odoo.pid")
        self.starts_file = os.path.join(self.folder, "starts.jsonl")
        self.mode_file = os.path.join(self.folder, "mode")
        self.log = os.path.join(self.folder, "odoo.log")
        self.stderr = os.path.join(self.folder, "odoo.stderr")
        self.config = config
        self.dsn = dsn
        open(self.log, "a").close()

    def argv(self):
        argv = [sys.executable, FAKE, "--daemon", "--port", str(self.port), "--pidfile",
                self.pidfile, "--starts", self.starts_file, "--mode-file", self.mode_file,
                "--log", self.log, "--stderr", self.stderr]
        if self.config:
            argv += ["--config", self.config]
        if self.dsn:
            argv += ["--dsn", self.dsn]
        return argv

    def set_mode(self, mode):
        with open(self.mode_file, "w") as handle:
            handle.write(mode + "\n")

    def start(self, timeout=20):
        subprocess.run(self.argv(), check=True, timeout=30)
        wait_for(self.healthy, timeout, what=f"the fake Odoo on {self.url}")
        return self.pid()

    def pid(self):
        try:
            with open(self.pidfile) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def starts(self):
        try:
            with open(self.starts_file) as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return []

    def healthy(self):
        return http_status(self.url + "/web/health", timeout=0.5) == 200

    def ready(self):
        return http_status(self.url + "/web/health?db_server_status=1", timeout=3) == 200

    def cleanup(self):
        for start in self.starts():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(start["pid"], sig)
                except (ProcessLookupError, PermissionError):
                    pass


def alive(pid):
    """A live process (a zombie is not alive)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class MonitorProcess:
    """``bin/auto-heal monitor --config`` as a real subprocess."""

    def __init__(self, config_path, state_dir, extra_args=(), env=None):
        self.config_path = str(config_path)
        self.state_path = os.path.join(str(state_dir), "state.json")
        self.output = open(os.path.join(os.path.dirname(self.config_path),
                                        "monitor.out"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, BIN, "monitor", "--config", self.config_path, *extra_args],
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True, env=env)

    def state(self):
        try:
            with open(self.state_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def watchdog(self):
        return self.state().get("watchdog", {})

    def wait(self, condition, timeout, what="the monitor's state"):
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"the monitor exited with {self.proc.returncode}: "
                                     f"{self.tail()}")
            wd = self.watchdog()
            return wd if wd and condition(wd) else None
        return wait_for(check, timeout, step=0.1, what=what)

    def tail(self):
        with open(self.output.name, "rb") as handle:
            return handle.read()[-2000:].decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.output.close()
        return self.proc.returncode


def base_config(tmp_path, fake, **extra):
    state = os.path.join(str(tmp_path), "state")
    config = {
        "watchdog": {"state_dir": state, "log_file": os.path.join(str(tmp_path), "watchdog.log"),
                     "interval": 0.5, "log_level": "debug"},
        "odoo": {"url": fake.url, "pidfile": fake.pidfile, "logs": [fake.log],
                 "restart": {"via": "command", "command": fake.argv(), "timeout": 10.0,
                             "stop_timeout": 2.0}},
        "probes": {
            "startup": {"period": 0.5, "timeout": 1.0, "failure_threshold": 20},
            "liveness": {"period": 0.5, "timeout": 0.5, "failure_threshold": 3},
            "readiness": {"period": 0.5, "timeout": 3.0, "failure_threshold": 3},
            "process": {"period": 0.5, "failure_threshold": 1},
            "postgresql": {"period": 0.5, "timeout": 2.0, "failure_threshold": 2},
        },
        "restart": {"max_restarts": 3, "window": 600.0, "first_delay": 0.5, "factor": 2.0,
                    "max_delay": 5.0, "healthy_reset": 600.0},
        "drift": {"period": 0.5, "good_after": 1.0},
        "scan": {"settle": 0.5},
    }
    return merge(config, extra)


def write_config(tmp_path, config, name="auto-heal.toml"):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as handle:
        handle.write(to_toml(config))
    return path


def spool_entries(state_dir):
    path = os.path.join(str(state_dir), "spool.jsonl")
    try:
        with open(path) as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
