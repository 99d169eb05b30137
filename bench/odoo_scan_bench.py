#!/usr/bin/env python3
"""The "scan database" cron on a fresh Odoo 18 database: statements and time per check.

    python bench/odoo_scan_bench.py [--repeat 5]

Starts a private PostgreSQL cluster, installs auto_heal in a new database with
the Odoo 18 found like ``make test`` finds it, then runs
``auto_heal.db.scan._scan_database`` --repeat times in ``odoo shell`` and
prints the totals of each run and, per check, the statements and the best
time of its scan line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.odoo_env import (  # noqa: E402
    addons_dir_with_auto_heal,
    find_odoo,
    odoo_addons_path,
    odoo_db_args,
    odoo_db_env,
)
from tools.pgcluster import PgCluster  # noqa: E402

SHELL = """
import json
best, totals = {}, []
for _ in range(%d):
    scan = env["auto_heal.db.scan"]._scan_database(trigger="manual")
    totals.append([scan.duration, scan.statements, scan.total_duration, scan.queries])
    for line in scan.check_ids:
        if line.check not in best or line.seconds < best[line.check][1]:
            best[line.check] = [line.statements, line.seconds, line.status]
env.cr.rollback()
print("AH_MEASURE " + json.dumps({"totals": totals, "checks": best}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    reasons = []
    odoo = find_odoo(reasons)
    if not odoo:
        sys.exit("error: no Odoo 18 found: %s" % "; ".join(reasons))
    work = tempfile.mkdtemp(prefix="auto_heal-bench-odoo-")
    with PgCluster(handle_signals=False) as pg:
        addons = "%s,%s" % (odoo_addons_path(odoo),
                            addons_dir_with_auto_heal(os.path.join(work, "addons")))
        conf = os.path.join(work, "odoo.conf")
        with open(conf, "w") as handle:
            handle.write("[options]\ndata_dir = %s\n" % os.path.join(work, "data"))
        common = ["-c", conf, "--addons-path=" + addons, "-d", "ah_bench", *odoo_db_args(pg),
                  "--without-demo=all", "--max-cron-threads=0", "--log-level=warn"]
        subprocess.run([odoo, *common, "-i", "auto_heal", "--stop-after-init",
                        "--http-port=0"], check=True, env=odoo_db_env(pg),
                       capture_output=True)
        out = subprocess.run([odoo, "shell", *common, "--no-http"], input=SHELL % args.repeat,
                             text=True, capture_output=True, env=odoo_db_env(pg))
    lines = [line for line in out.stdout.splitlines() if line.startswith("AH_MEASURE ")]
    if not lines:
        sys.exit("error: odoo shell printed no measure: %s" % out.stderr[-2000:])
    data = json.loads(lines[-1][len("AH_MEASURE "):])
    for checks, statements, total, queries in data["totals"]:
        print("scan: checks %.3f s in %d statements; whole scan %.3f s in %d queries" % (
            checks, statements, total, queries))
    for name, (statements, seconds, status) in sorted(data["checks"].items(),
                                                      key=lambda item: -item[1][1]):
        print("%-28s %3d statements %7.1f ms  %s" % (name, statements, 1000 * seconds,
                                                     status))


if __name__ == "__main__":
    main()
