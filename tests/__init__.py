from . import test_patterns
from . import test_scan
from . import test_security
