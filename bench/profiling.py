"""`python -m bench profile`: where the forwarder's time and memory go, next to the floor's.

Three views, each from fresh processes against the same fake AWS as the benchmark:
- `-X importtime` of the cold start: self time summed by top-level package, the packages only the
  forwarder imports, and the forwarder's own import tree;
- cProfile of the cold first invocation, of the warm small-mail loop and of one 30 MB mail;
- tracemalloc's traced peak for one 30 MB mail (Python allocations only, no interpreter baseline).
The report goes to `<work>/profile/report.txt`; the `.prof` files next to it open with pstats or snakeviz.
"""

from __future__ import annotations

import io
import pstats
import re
import statistics
from collections import defaultdict
from pathlib import Path

from bench.harness import SIDES, SMALL, Runner, environment, fake_aws, prepare

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
_IMPORT_RUNS = 5


def parse_importtime(text: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) per line of `python -X importtime` output."""
    found = []
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            found.append((match[4], int(match[1]), int(match[2]), (len(match[3]) - 1) // 2))
    return found


def _by_package(runs: list[list[tuple[str, int, int, int]]]) -> dict[str, float]:
    """Median over runs of the self time (ms) summed per top-level package."""
    totals: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        sums: dict[str, float] = defaultdict(float)
        for module, self_us, _, _ in run:
            sums[module.split(".")[0]] += self_us / 1e3
        for package, total in sums.items():
            totals[package].append(total)
    return {package: statistics.median(values) for package, values in totals.items()}


def _tree(run: list[tuple[str, int, int, int]]) -> list[tuple[str, int, list]]:
    """The import tree: `-X importtime` prints a module after the modules it imported, one level deeper."""
    pending: dict[int, list] = defaultdict(list)
    for module, _, cumulative, depth in run:
        node = (module, cumulative, pending.pop(depth + 1, []))
        pending[depth].append(node)
    return pending[0]


def _forwarder_tree(run: list[tuple[str, int, int, int]], threshold_ms: float = 2.0) -> list[str]:
    """The forwarder's modules and, one level below each, what they import (cumulative >= threshold)."""
    lines: list[str] = []

    def show(node: tuple[str, int, list], depth: int) -> None:
        module, cumulative, children = node
        if cumulative / 1e3 < threshold_ms and not module.startswith("forwarder"):
            return
        lines.append(f"{'  ' * depth}{module}: {cumulative / 1e3:.1f} ms")
        if module.startswith("forwarder"):
            for child in children:
                show(child, depth + 1)

    for root in _tree(run):
        if root[0].startswith("forwarder"):
            show(root, 0)
    return lines


def _stats(path: Path, sort: str, limit: int, pattern: str = "") -> str:
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.strip_dirs().sort_stats(sort).print_stats(*([pattern] if pattern else []), limit)
    text = buffer.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def profile(work: Path, idempotency: bool = False, deployed: bool = False) -> int:
    """Write the report; `idempotency`/`deployed` profile the forwarder as `--idempotency`/`--deployed` run it."""
    events = prepare(work)
    out = work / "profile"
    out.mkdir(parents=True, exist_ok=True)
    small, big = str(events[SMALL]), str(events["30mb"])
    report: list[str] = []
    with fake_aws(work) as endpoint:
        runner = Runner(work, endpoint, environment(endpoint, work, idempotency, deployed=deployed), check=True)
        for side in SIDES:
            runner.spawn({"side": side, "mode": "cold", "event": small})

        imports = {side: [] for side in SIDES}
        for _ in range(_IMPORT_RUNS):
            for side in SIDES:
                runner.spawn({"side": side, "mode": "cold", "event": small}, extra_args=("-X", "importtime"))
                imports[side].append(parse_importtime((work / "child.stderr").read_text()))
        packages = {side: _by_package(imports[side]) for side in SIDES}
        report += [f"== import self time by top-level package, ms (median of {_IMPORT_RUNS} cold starts)", ""]
        report.append(f"{'package':32} {'floor':>8} {'forwarder':>10} {'extra':>8}")
        names = sorted(set(packages["floor"]) | set(packages["handler"]), key=lambda p: -packages["handler"].get(p, 0))
        for name in names:
            floor, handler = packages["floor"].get(name, 0.0), packages["handler"].get(name, 0.0)
            if max(floor, handler) >= 1.0:
                report.append(f"{name:32} {floor:8.1f} {handler:10.1f} {handler - floor:+8.1f}")
        report.append(f"{'total':32} {sum(packages['floor'].values()):8.1f} {sum(packages['handler'].values()):10.1f}")
        report.append(
            "(the floor module's own time is its two boto3.client() calls, made at import; the forwarder makes "
            "its three clients in the first invocation, so they are not in this table)"
        )
        report += ["", "== the forwarder's import tree (cumulative ms, last run; other packages >= 2 ms)", ""]
        report += _forwarder_tree(imports["handler"][-1])

        profiles = [
            ("cold first invocation (import + first mail)", "handler", "cold", small, "cumulative", 45),
            ("warm small mail loop", "handler", "warm", small, "tottime", 30),
            ("warm small mail loop", "floor", "warm", small, "tottime", 20),
            ("one 30 MB mail", "handler", "big", big, "tottime", 20),
            ("one 30 MB mail", "floor", "big", big, "tottime", 15),
        ]
        for title, side, mode, event, sort, limit in profiles:
            path = out / f"{side}-{mode}-{Path(event).stem}.prof"
            spec = {"side": side, "mode": mode, "event": event, "warmup": small, "count": 300}
            runner.spawn({**spec, "profile": "cprofile", "profile_out": str(path)})
            report += ["", f"== cProfile: {title}, {side} (sorted by {sort}; {path.name})", ""]
            report.append(_stats(path, sort, limit))

        report += ["", "== tracemalloc: traced peak of one 30 MB mail (MiB, Python allocations only)", ""]
        for side in SIDES:
            result, _ = runner.spawn(
                {"side": side, "mode": "big", "event": big, "warmup": small, "profile": "tracemalloc"}
            )
            report.append(f"{side:8} peak {result['profile']['traced_peak'] / 2**20:7.1f}")
    text = "\n".join(report) + "\n"
    (out / "report.txt").write_text(text)
    print(text)
    print(f"written: {out / 'report.txt'}")
    return 0
