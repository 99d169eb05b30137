"""The approval policy and the demotion rule, for every environment and severity."""

import pytest

from engine.patterns import SEVERITIES
from engine.policy import (
    DEFAULT_RULES,
    ENVIRONMENTS,
    PolicyError,
    effective_rules,
    needs_approval,
    should_demote,
)

# environment -> the severities that may be fixed without a person by default
AUTO_BY_DEFAULT = {
    "dev": {"low", "medium", "high", "critical"},
    "staging": {"low", "medium"},
    "prod": {"low"},
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_defaults(environment, severity):
    approval, reason = needs_approval(environment, severity, True, {})
    assert approval == (severity not in AUTO_BY_DEFAULT[environment])
    assert reason.startswith(f"{environment}: {severity} severity ")
    assert reason.endswith(f"(default for {environment})")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_auto_fix_off_always_needs_approval(environment, severity):
    rules = dict.fromkeys(SEVERITIES, "auto")
    assert needs_approval(environment, severity, False, rules) == (
        True, "the pattern does not allow automatic fixes (auto_fix is off)")
    assert needs_approval(environment, severity, True, rules, demoted=True)[0] is True


def test_settings_override_the_environment():
    assert needs_approval("prod", "high", True, {"high": "auto"}) == (
        False, "prod: high severity may be fixed automatically (set in Settings)")
    assert needs_approval("dev", "low", True, {"low": "approval"})[0] is True
    assert needs_approval("dev", "low", True, {"low": "default"})[0] is False
    assert effective_rules("prod", {"medium": None}) == DEFAULT_RULES["prod"]


@pytest.mark.parametrize("args, message", [
    (("prod", "urgent", True, {}), "severity must be one of low, medium, high, critical"),
    (("prod", "low", True, {"urgent": "auto"}), "rule for an unknown severity 'urgent'"),
    (("prod", "low", True, {"low": "maybe"}), "rule for low must be one of"),
    (("production", "low", True, {}), "environment must be one of dev, staging, prod"),
])
def test_bad_input_is_refused(args, message):
    with pytest.raises(PolicyError, match=message):
        needs_approval(*args)


def test_demotion_counts_failures_in_a_row():
    assert not should_demote(["failed", "failed"])
    assert should_demote(["done", "failed", "rolled_back", "failed"])
    assert not should_demote(["failed", "failed", "failed", "done"])
    assert should_demote(["failed"], threshold=1)
    assert not should_demote(["failed"] * 4, threshold=5)
