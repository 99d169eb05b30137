from . import test_patterns, test_scan, test_security
