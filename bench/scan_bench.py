#!/usr/bin/env python3
"""Scan speed and memory on the fixed yardstick, and the watchdog at rest.

    make bench [BENCH_ARGS="--mb 200 --rounds 3 --watch-seconds 60 --cron-records 20000"]

The yardstick is the project's shared bench (``../shared/bench``, README
there): ``gen_odoo_log.py`` writes a 200 MB Odoo 18 log (always the same
bytes), ``patterns.txt`` holds the 58 regexes the reference tools run. They
are used by path, never copied. One run measures, on that file, interleaved
over ``--rounds`` rounds (medians):

* ``bin/auto-heal detect --json --log FILE``: the full pattern database and
  full results (records folded, classified, fingerprinted, grouped), with
  the fastest backend here, then with Python's ``re`` only
  (``AUTO_HEAL_BACKEND=re``, what a stock Odoo virtualenv has);
* ``LC_ALL=C grep -c -E -f patterns.txt FILE`` and ``rg -c -f patterns.txt FILE``.

It prints MB/s, detect's speed ratio to each reference (above 1 is faster)
and its peak RSS (``/usr/bin/time -f %M``), checks that detect still finds
every kind of error the generator plants, then starts the watchdog
(``bin/auto-heal monitor``, default settings) against a stand-in Odoo
(``host/tests/fake_odoo.py``) and reports its resident memory and CPU over
``--watch-seconds``, and times fix-cron's planning on a data file of
``--cron-records`` ir.cron records and on one twice as large (linear
planning takes twice the time). Nothing here asserts a time: the figures are for
README.rst's performance section.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "bin", "auto-heal")
DEFAULT_BENCH = os.path.join(os.path.dirname(REPO), "shared", "bench")

#: The kinds the generator plants that the project's patterns name (or, for
#: errors no pattern knows, ``unknown``).
PLANTED = ("db_connection_failed", "db_too_many_connections", "cron_field_deprecated",
           "permission_denied", "db_serialization_failure", "db_deadlock",
           "schema_out_of_date", "worker_time_limit", "worker_memory_limit", "smtp_failure",
           "module_dependency_missing", "filestore_missing", "login_failed", "unknown")


def _time_binary():
    path = shutil.which("time", path="/usr/bin:/bin")
    if not path:
        raise SystemExit("bench: /usr/bin/time is missing: apt-get install time")
    return path


def generate(bench_dir, megabytes, folder):
    """The yardstick log for *megabytes*, generated once and kept in .tmp/bench."""
    path = os.path.join(folder, f"odoo_{megabytes:g}mb.log")
    if not os.path.exists(path):
        print(f"generating {path} with {bench_dir}/gen_odoo_log.py ...", flush=True)
        subprocess.run([sys.executable, os.path.join(bench_dir, "gen_odoo_log.py"),
                        "--mb", str(megabytes), "-o", path + ".part"], check=True,
                       stdout=subprocess.DEVNULL)
        os.replace(path + ".part", path)
    return path


def run_timed(argv, env=None, output=None):
    """Wall seconds and peak RSS (KiB) of one run of *argv*."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, \
            tempfile.TemporaryFile() as sink:
        command = [_time_binary(), "-f", "%M", "-o", rss.name, *argv]
        start = time.perf_counter()
        # Never /dev/null: GNU grep stops at the first match when it sees it.
        done = subprocess.run(command, env=env, stdout=output or sink,
                              stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"bench: {' '.join(argv)} failed ({done.returncode}): "
                             f"{done.stderr.decode(errors='replace')[-500:]}")
        text = rss.read().strip().splitlines()
    return seconds, int(text[-1]) if text and text[-1].isdigit() else 0


def measure(log, patterns_txt, rounds):
    env = dict(os.environ)
    env.pop("AUTO_HEAL_BACKEND", None)
    re_env = dict(env, AUTO_HEAL_BACKEND="re")
    grep_env = dict(env, LC_ALL="C")
    tools = {
        "detect": ([sys.executable, BIN, "detect", "--json", "--log", log], env),
        "detect (re only)": ([sys.executable, BIN, "detect", "--json", "--log", log], re_env),
        "grep -E": (["grep", "-c", "-E", "-f", patterns_txt, log], grep_env),
        "ripgrep": (["rg", "-c", "-f", patterns_txt, log], env),
    }
    for name, (argv, _) in tools.items():
        if not shutil.which(argv[0]):
            raise SystemExit(f"bench: {argv[0]} is not installed ({name})")
    # One warm-up: the page cache holds the file and detect's compiled database.
    with open(log, "rb") as handle:
        while handle.read(1 << 24):
            pass
    run_timed(tools["detect"][0], tools["detect"][1])
    times = {name: [] for name in tools}
    peaks = {name: [] for name in tools}
    for _ in range(rounds):
        for name, (argv, tool_env) in tools.items():
            seconds, peak = run_timed(argv, tool_env)
            times[name].append(seconds)
            peaks[name].append(peak)
    return ({name: statistics.median(values) for name, values in times.items()},
            {name: max(values) for name, values in peaks.items()})


def kinds_found(log):
    with tempfile.TemporaryFile("w+") as out:
        run_timed([sys.executable, BIN, "detect", "--json", "--log", log], output=out)
        out.seek(0)
        document = json.load(out)
    found = {}
    for incident in document["incidents"]:
        found[incident["pattern"]] = found.get(incident["pattern"], 0) + incident["count"]
    return found


def long_lines_log(path, lines=3, megabytes=100):
    """Records whose single lines are *megabytes* long, between ordinary ones."""
    if os.path.exists(path):
        return path
    chunk = b"1234567, " * (1 << 20)
    with open(path + ".part", "wb") as handle:
        for second in range(lines):
            handle.write(b"2024-11-25 06:00:%02d,000 1234 ERROR prod odoo.sql_db: bad query: x\n"
                         b"ERROR: deadlock detected\n" % second)
            handle.write(b"2024-11-25 06:00:%02d,500 1234 INFO prod odoo.models.unlink: User #2 "
                         b"deleted ir.attachment records with IDs: [" % second)
            for _ in range(int(megabytes * 1e6 / len(chunk)) + 1):
                handle.write(chunk)
            handle.write(b"]\n")
    os.replace(path + ".part", path)
    return path


def memory_at_size(bench_dir, folder):
    """detect's peak RSS on a 1 GB yardstick and on a log of 100 MB lines."""
    rows = []
    for name, path in (("1 GB yardstick", generate(bench_dir, 1000, folder)),
                       ("100 MB lines", long_lines_log(os.path.join(folder, "long_lines.log")))):
        seconds, peak = run_timed([sys.executable, BIN, "detect", "--json", "--log", path])
        rows.append((name, os.path.getsize(path) / 1e6, seconds, peak))
    return rows


def cron_planning(records):
    """Seconds to plan fix-cron on data files of *records* and twice as many
    ir.cron records (two removed fields each): linear planning doubles."""
    sys.path.insert(0, REPO)
    from engine import xmledit

    rows = []
    for count in (records, 2 * records):
        parts = ['<?xml version="1.0" encoding="utf-8"?>', "<odoo>"]
        for i in range(count):
            parts += [f'    <record id="cron_{i}" model="ir.cron">',
                      f'        <field name="name">Job {i}</field>',
                      '        <field name="numbercall">-1</field>',
                      '        <field name="doall" eval="False"/>',
                      '        <field name="interval_number">1</field>',
                      "    </record>"]
        data = ("\n".join(parts + ["</odoo>", ""])).encode()
        start = time.perf_counter()
        plan = xmledit.plan_bytes(data, "cron.xml")
        rows.append((count, len(data) / 1e6, time.perf_counter() - start, len(plan.removals)))
    return rows


def watchdog_at_rest(seconds, settle=15.0):
    """RSS (MiB, median and peak) and CPU (%) of ``monitor`` against a stand-in Odoo."""
    import psutil

    sys.path.insert(0, os.path.join(REPO, "host", "tests"))
    from watchdog_helpers import FakeOdoo, MonitorProcess, write_config

    folder = tempfile.mkdtemp(prefix="auto_heal_bench_watchdog_")
    fake = FakeOdoo(os.path.join(folder, "odoo"))
    monitor = None
    try:
        fake.start()
        state = os.path.join(folder, "state")
        # Default settings; only what points at the stand-in is set.
        config = {"watchdog": {"state_dir": state, "log_file": os.path.join(folder, "wd.log")},
                  "odoo": {"url": fake.url, "pidfile": fake.pidfile, "logs": [fake.log],
                           "restart": {"via": "command", "command": fake.argv()}}}
        monitor = MonitorProcess(write_config(folder, config), state)
        time.sleep(settle)
        if monitor.proc.poll() is not None:
            raise SystemExit(f"bench: the monitor exited: {monitor.tail()}")
        process = psutil.Process(monitor.proc.pid)
        children = process.children(recursive=True)  # bin/auto-heal may exec the venv's python
        process = children[-1] if children and process.name() != "python" else process
        before, start = process.cpu_times(), time.monotonic()
        samples = []
        while time.monotonic() - start < seconds:
            samples.append(process.memory_info().rss)
            time.sleep(1.0)
        after, elapsed = process.cpu_times(), time.monotonic() - start
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
        return statistics.median(samples) / 2**20, max(samples) / 2**20, cpu
    finally:
        if monitor is not None:
            monitor.stop()
        fake.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", default=DEFAULT_BENCH,
                        help="the shared yardstick (gen_odoo_log.py, patterns.txt)")
    parser.add_argument("--mb", type=float, default=200, help="size of the log (10**6 bytes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--watch-seconds", type=float, default=60.0)
    parser.add_argument("--log", help="measure this log instead of generating one")
    parser.add_argument("--cron-records", type=int, default=20_000,
                        help="also time fix-cron planning on this many ir.cron records and "
                             "twice as many (0: skip)")
    parser.add_argument("--memory", action="store_true",
                        help="also detect's peak RSS on a 1 GB yardstick and on 100 MB lines "
                             "(writes about 1.3 GB to .tmp/bench once)")
    args = parser.parse_args()
    patterns_txt = os.path.join(args.bench_dir, "patterns.txt")
    if not os.path.isfile(patterns_txt):
        raise SystemExit(f"bench: {patterns_txt} not found (--bench-dir)")
    folder = os.path.join(REPO, ".tmp", "bench")
    os.makedirs(folder, exist_ok=True)
    log = args.log or generate(args.bench_dir, args.mb, folder)
    megabytes = os.path.getsize(log) / 1e6
    print(f"yardstick: {log} ({megabytes:.0f} MB), {args.rounds} rounds interleaved, medians")
    seconds, peaks = measure(log, patterns_txt, args.rounds)
    grep, rg = seconds["grep -E"], seconds["ripgrep"]
    print(f"{'':18} {'seconds':>8} {'MB/s':>8} {'vs grep':>8} {'vs rg':>8} {'peak RSS':>9}")
    for name, value in seconds.items():
        ratios = (f"{grep / value:7.2f}x {rg / value:7.2f}x" if name.startswith("detect")
                  else f"{'':8} {'':8}")
        print(f"{name:18} {value:8.2f} {megabytes / value:8.1f} {ratios} "
              f"{peaks[name] / 1024:6.1f} MB")
    found = kinds_found(log)
    missing = [kind for kind in PLANTED if kind not in found]
    print(f"kinds found: {len(found)} ({', '.join(f'{k} {v}' for k, v in sorted(found.items()))})")
    print("every planted kind found" if not missing else f"MISSING: {', '.join(missing)}")
    if args.memory:
        for name, size, value, peak in memory_at_size(args.bench_dir, folder):
            print(f"detect on {name} ({size:.0f} MB): {value:.1f} s, peak RSS {peak / 1024:.1f} MB")
    if args.cron_records > 0:
        rows = cron_planning(args.cron_records)
        for count, size, value, removals in rows:
            print(f"fix-cron planning: {count} ir.cron records ({size:.1f} MB, {removals} "
                  f"removals): {value:.2f} s")
        print(f"fix-cron planning, twice the records: {rows[1][2] / rows[0][2]:.2f}x the time")
    if args.watch_seconds > 0:
        median, peak, cpu = watchdog_at_rest(args.watch_seconds)
        print(f"watchdog at rest ({args.watch_seconds:.0f} s, default settings, stand-in Odoo): "
              f"RSS {median:.1f} MB (peak {peak:.1f} MB), CPU {cpu:.2f} %")


if __name__ == "__main__":
    main()
