"""The chart's PrometheusRule through the real promtool (Debian `prometheus` package): syntax, templates, and unit
tests of every alert firing and not firing (tests/integration/promtool/storeagent-alerts.test.yaml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.helm import CI_VALUES, one, render

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent / "promtool"
TESTS = HERE / "storeagent-alerts.test.yaml"
# Static runbook text is checked in test_chart_render; promtool compares every annotation, so only the templated
# ones stay in the unit-test copy.
STATIC_ANNOTATIONS = ("runbook", "runbook_url")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian `prometheus` package (.ci/apt-packages.txt)")
    return path


def rule_groups(sets: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    default = next(p for p in CI_VALUES if p.name == "default-values.yaml")
    objs = render([default], {"monitoring.prometheusRule.enabled": True, **(sets or {})}, include_crds=False)
    groups: list[dict[str, Any]] = one(objs, "PrometheusRule")["spec"]["groups"]
    return groups


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_rendered_rules_pass_promtool_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}))
    out = run("check", "rules", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_every_alert_fires_and_stays_quiet_as_specified(tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            for key in STATIC_ANNOTATIONS:
                rule["annotations"].pop(key)
    (tmp_path / "storeagent-rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    out = run("test", "rules", TESTS.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_unit_tests_cover_each_alert_firing_and_not_firing() -> None:
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"]}
    cases = yaml.safe_load(TESTS.read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for t in case["alert_rule_test"]:
            (fired if t["exp_alerts"] else quiet).add(t["alertname"])
    assert alerts == fired, f"alerts without a firing test: {alerts - fired}"
    assert alerts == quiet, f"alerts without a not-firing test: {alerts - quiet}"


def test_thresholds_come_from_values(tmp_path: Path) -> None:
    groups = rule_groups({"monitoring.prometheusRule.thresholds.voiceToVoiceP95Seconds": 2.5,
                          "monitoring.prometheusRule.for.voiceToVoice": "3m"})
    rule = next(r for g in groups for r in g["rules"] if r["alert"] == "StoreAgentVoiceLatencyHigh")
    assert rule["expr"].rstrip().endswith("> 2.5") and rule["for"] == "3m"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    assert run("check", "rules", str(path), cwd=tmp_path).returncode == 0
