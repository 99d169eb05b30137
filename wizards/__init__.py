from . import auto_heal_fix_run_reject
