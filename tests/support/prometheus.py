"""A real Prometheus (Debian `prometheus` package) on 127.0.0.1 for tests: generated config, own TSDB, HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ScrapeJob:
    name: str
    target: str  # host:port
    labels: Mapping[str, str] = field(default_factory=dict)
    honor_labels: bool = False


class PrometheusServer:
    """`with PrometheusServer(tmp, [ScrapeJob(...)]) as prom: prom.query("up")`."""

    def __init__(self, workdir: Path, jobs: Sequence[ScrapeJob], scrape_interval: str = "1s") -> None:
        self.workdir = workdir
        self.jobs = list(jobs)
        self.scrape_interval = scrape_interval
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: install the Debian `prometheus` package")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {"job_name": j.name, "honor_labels": j.honor_labels, "metrics_path": "/metrics",
                 "static_configs": [{"targets": [j.target], "labels": dict(j.labels)}]}
                for j in self.jobs
            ],
        }
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        check = subprocess.run([shutil.which("promtool") or "promtool", "check", "config", str(cfg)],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
             f"--web.console.templates={self.workdir}", f"--web.console.libraries={self.workdir}"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self._wait(lambda: self._get("/-/ready") is not None, "ready", 60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _wait(self, check: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not {what} after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> bytes | None:
        query = "?" + urllib.parse.urlencode(params, doseq=True) if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=10) as r:
            body: bytes = r.read()
            return body if r.status == 200 else None

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns `data`, raises AssertionError with Prometheus's error otherwise."""
        try:
            body = self._get(f"/api/v1/{path}", params)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"prometheus /api/v1/{path} {params}: {e.code} {e.read().decode()}") from None
        doc = json.loads(body or b"{}")
        assert doc.get("status") == "success", doc
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [
            {"metric": {}, "value": data["result"]}]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for_scrapes(self, timeout: float = 60) -> None:
        """Until every job's target is up and has been scraped at least twice (rate() needs two samples)."""
        def all_up() -> bool:
            targets = self.api("targets")["activeTargets"]
            return len(targets) == len(self.jobs) and all(t["health"] == "up" for t in targets)

        self._wait(all_up, "scraping every target", timeout)
        time.sleep(2.5)

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": match})
        return values
