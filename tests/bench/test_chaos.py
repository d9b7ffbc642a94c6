"""A short fault campaign (bench/chaos.py) in the test suite, so its invariants are kept: a fixed
seed, two and a half minutes, the whole deployment (Sentinel, two instances of two workers, the
simulator, 200 clients), judged by the independent checker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration
SEED, MINUTES = 7, 2.5


def test_a_short_seeded_campaign_holds_every_invariant(tmp_path):
    out = tmp_path / "chaos"
    done = subprocess.run(
        [sys.executable, "bench/chaos.py", "--seed", str(SEED), "--minutes", str(MINUTES), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=MINUTES * 60 + 240,
        check=False,
    )
    print(done.stdout[-3000:])
    report = json.loads((out / "report.json").read_text())
    assert report["seed"] == SEED and report["minutes"] == MINUTES
    assert report["faults"], "the schedule drew no fault"
    failed = {name: v for name, v in report["invariants"].items() if v["violations"]}
    assert not failed, json.dumps(failed, indent=1)[:4000]
    assert report["ok"] and done.returncode == 0, done.stderr[-3000:]
    assert (out / "timeline.png").stat().st_size > 10_000
