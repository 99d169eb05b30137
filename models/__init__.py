from . import (
    auto_heal_db_scan,
    auto_heal_fix_run,
    auto_heal_fix_run_params,
    auto_heal_fix_run_review,
    auto_heal_handover,
    auto_heal_health,
    auto_heal_incident,
    auto_heal_log_source,
    auto_heal_notification,
    auto_heal_overview,
    auto_heal_pattern,
    res_config_settings,
)
