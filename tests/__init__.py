from . import (
    test_db_scan,
    test_db_scan_checks,
    test_fix_actions,
    test_fix_run,
    test_handover,
    test_health,
    test_notify,
    test_overview,
    test_patterns,
    test_scan,
    test_security,
    test_watchdog_rpc,
)
