"""Shared pytest setup. tests/ is deliberately not a package: the repository root must never be on sys.path
(the `operator/` folder would shadow the standard library's `operator`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# tests/support holds helpers shared by the tiers (fakes, fixtures); importable as `support`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

_TIER_SECONDS: dict[str, float] = {}
_TIER_TESTS: dict[str, int] = {}


def _tier(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if parts[0] == "tests" and len(parts) > 2 else parts[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # setup + call + teardown per test, so session fixtures (control plane start) count toward their tier.
    tier = _tier(report.nodeid)
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration
    if report.when == "call":
        _TIER_TESTS[tier] = _TIER_TESTS.get(tier, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One timing line per tier (unit, integration, e2e), so a slow tier is visible in CI's log."""
    for tier in sorted(_TIER_SECONDS):
        terminalreporter.write_line(f"tier {tier}: {_TIER_TESTS.get(tier, 0)} tests, {_TIER_SECONDS[tier]:.0f} s")
