from . import auto_heal_pattern
from . import auto_heal_incident
from . import auto_heal_fix_run
from . import auto_heal_log_source
