"""`python -m bench instructions`: instructions per small mail, forwarder and floor, counted by valgrind.

Time on a shared machine drifts by tens of percent between runs; the number of instructions a warm process
executes per mail hardly does (with one hash seed for every run, it repeats to 0.1-1 % on a quiet machine; under
heavy load, clock-driven work such as a cache refresh can move a full garbage collection from one loop to the
other: run it twice). Each side runs the small-mail loop twice under `valgrind --tool=cachegrind --cache-sim=no`,
with `FEW` and `MANY` mails after the same warm-up; the difference of the two totals over `MANY - FEW` is one
mail's instructions, without the interpreter start, the imports or the warm-up. The same loop around a handler
that does nothing is subtracted from both: the child copies each event and reads the clock, outside what the
benchmark times. Slow (a minute or two per side): valgrind runs the interpreter some 50 times slower. It counts
work, not waits or cache misses: the time ratio of `make bench` is somewhat higher.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bench.harness import SIDES, SMALL, HarnessError, Runner, environment, fake_aws, prepare

FEW, MANY = 10, 60
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _total(runner: Runner, work: Path, side: str, small: str, count: int) -> int:
    spec = {"side": side, "mode": "warm", "event": small, "warmup": small, "count": count}
    wrapper = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
    runner.spawn(spec, wrapper=wrapper)
    found = _REFS.search((work / "child.stderr").read_text(errors="replace"))
    if found is None:
        raise HarnessError(f"valgrind printed no instruction count for the {side}")
    return int(found[1].replace(",", ""))


def per_mail(work: Path, idempotency: bool = False, deployed: bool = False, pythonpath: str | None = None) -> dict:
    """Instructions per small mail of each side (millions), and their ratio."""
    if shutil.which("valgrind") is None:
        raise HarnessError("valgrind is not installed")
    events = prepare(work)
    counts: dict[str, float] = {}
    with fake_aws(work) as endpoint:
        # One hash seed for every run: set and dict orders, and so the allocations, repeat from run to run.
        env = {**environment(endpoint, work, idempotency, pythonpath, deployed=deployed), "PYTHONHASHSEED": "0"}
        for side in ("null", *SIDES):
            runner = Runner(work, endpoint, env, check=side != "null")
            few, many = (_total(runner, work, side, str(events[SMALL]), count) for count in (FEW, MANY))
            counts[side] = (many - few) / (MANY - FEW) / 1e6
    floor, forwarder = counts["floor"] - counts["null"], counts["handler"] - counts["null"]
    return {"floor": floor, "forwarder": forwarder, "ratio": forwarder / floor}


def report(work: Path, idempotency: bool = False, deployed: bool = False, pythonpath: str | None = None) -> int:
    configuration = "as deployed" if deployed else "idempotency on" if idempotency else "default"
    result = per_mail(work, idempotency, deployed, pythonpath)
    print(
        f"small mail ({configuration}), instructions per mail: floor {result['floor']:.2f} M, "
        f"forwarder {result['forwarder']:.2f} M, ratio {result['ratio']:.2f}x"
    )
    return 0
