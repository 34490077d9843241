"""Shared pytest setup. tests/ is deliberately not a package: the repository root must never be on sys.path
(the `operator/` folder would shadow the standard library's `operator`)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT.parent / "shared" / "captures" / "freeswitch-1.10.12"

# tests/support holds helpers shared by the tiers (fakes, fixtures); importable as `support`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
