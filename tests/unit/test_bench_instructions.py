"""`python -m bench instructions`: one mail's instructions from two loop lengths, the loop's own cost removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import instructions


def test_instructions_per_mail_are_the_difference_of_two_loops_less_the_empty_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN totals as valgrind would count them: a fixed start plus a per-mail cost, per side
    per_mail = {"null": 300_000, "floor": 9_000_000, "handler": 17_300_000}
    start = {"null": 150_000_000, "floor": 700_000_000, "handler": 900_000_000}

    def total(runner: Any, work: Path, side: str, small: str, count: int) -> int:
        return start[side] + count * per_mail[side]

    monkeypatch.setattr(instructions, "_total", total)
    monkeypatch.setattr(instructions, "prepare", lambda work: {instructions.SMALL: tmp_path / "small.json"})
    monkeypatch.setattr(instructions, "fake_aws", _NoServer)
    monkeypatch.setattr(instructions.shutil, "which", lambda name: "/usr/bin/valgrind")
    # WHEN the per-mail counts are worked out
    result = instructions.per_mail(tmp_path)
    # THEN start-up cancels out and the loop's own cost is subtracted from both sides
    assert result["floor"] == pytest.approx(8.7)
    assert result["forwarder"] == pytest.approx(17.0)
    assert result["ratio"] == pytest.approx(17.0 / 8.7)


def test_instructions_read_valgrinds_count() -> None:
    stderr = "==1== Command: python child.py\n==1== \n==1== I   refs:      1,805,930,743\n"
    found = instructions._REFS.search(stderr)
    assert found is not None and int(found[1].replace(",", "")) == 1_805_930_743


def test_instructions_need_valgrind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(instructions.HarnessError, match="valgrind is not installed"):
        instructions.per_mail(tmp_path)


class _NoServer:
    def __init__(self, work: Path) -> None:
        self.work = work

    def __enter__(self) -> str:
        return "http://127.0.0.1:1"

    def __exit__(self, *_: object) -> None:
        return None


def test_the_null_child_runs_the_loop_without_the_forwarder(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import EVENTS, ROOT

    # GIVEN the child's spec for the `null` side, which `bench instructions` subtracts from both sides
    result = tmp_path / "result.json"
    spec = {
        "side": "null",
        "mode": "warm",
        "event": str(EVENTS / "forward.json"),
        "warmup": str(EVENTS / "forward.json"),
        "count": 3,
        "result": str(result),
    }
    # WHEN it runs as the harness runs it, as a script
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "child.py"), json.dumps(spec)],
        check=False,
        capture_output=True,
        timeout=60,
    )
    # THEN it loops over the three mails and reports them, having sent nothing (the forwarder, with no AWS to
    # reach, would have failed)
    assert done.returncode == 0, done.stderr
    report = json.loads(result.read_text())
    assert len(report["times_ms"]) == 3
    assert report["check"] == {"forwarded": False, "oversize": False, "sent": 0}
