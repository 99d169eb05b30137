from . import (
    test_fix_actions,
    test_fix_run,
    test_patterns,
    test_scan,
    test_security,
    test_watchdog_rpc,
)
