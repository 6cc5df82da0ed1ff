"""A seeded sample of the crash matrix (scripts/crash_matrix.py) runs with the suite; the full matrix is a
separate command (minutes per topology), reported in the README."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "crash_matrix.py"


# Every topology: privatelink through the enterprise example, which turns every security section on over it.
# (basic's graph and the governance steps of serverless are inside enterprise's; Azure's kills are in its e2e tests. The
# sample is seeded, so it re-checks the same point each run: the proof for every topology, hub-and-spoke's included, is the
# full matrix, scripts/crash_matrix.py, run for each release.)
@pytest.mark.parametrize("topology", ["enterprise"])
def test_sampled_crash_points_all_recover(topology):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--topology", topology, "--sample", "1", "--seed", "11", "--output", "json"],
        capture_output=True, text=True, timeout=900,
    )
    report = json.loads(result.stdout)[topology]
    assert report["total"] == 1
    assert report["failures"] == [] and report["recovered"] == 1, report
    assert result.returncode == 0
