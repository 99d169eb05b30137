# The mixin first: the models below inherit it, and Odoo builds them in import order.
from . import auto_heal_masked_mixin

# isort: split
from . import (
    auto_heal_db_scan,
    auto_heal_fix_run,
    auto_heal_fix_run_approval,
    auto_heal_fix_run_execute,
    auto_heal_fix_run_params,
    auto_heal_fix_run_plan,
    auto_heal_fix_run_review,
    auto_heal_fix_run_watchdog,
    auto_heal_handover,
    auto_heal_health,
    auto_heal_http_origin,
    auto_heal_incident,
    auto_heal_labels,
    auto_heal_log_source,
    auto_heal_notification,
    auto_heal_overview,
    auto_heal_pattern,
    res_config_settings,
    res_config_settings_approval,
)
