"""`make bench`'s harness end to end, quickly: both sides in fresh processes against the fake AWS, every
small-mail configuration, each run checked against the requests the fake AWS saw (`--check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_check_measures_every_configuration_and_writes_nothing(tmp_path: Path) -> None:
    # GIVEN the harness's smoke run (one round, 30 small mails, no 40 MB mails), scratch files in tmp_path
    results = ROOT / "bench" / "results.md"
    before = results.read_bytes() if results.exists() else None
    # WHEN it runs
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--check", "--work", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # THEN every run was verified (exit 1 would be a harness failure: a mail not forwarded, a wrong request count),
    # the table has the default, idempotency and as-deployed small-mail rows, and no results file was written
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split(" | ")[0].lstrip("| ") for line in run.stdout.splitlines() if line.startswith("| ")]
    assert "small mail (5 KB): time per message" in rows
    assert "small mail (5 KB), idempotency on: time per message" in rows
    assert "small mail (5 KB), as deployed (idempotency, team replies, delivery trace): time per message" in rows
    assert "cold start (spawn -> first mail sent)" in rows
    assert (results.read_bytes() if results.exists() else None) == before
