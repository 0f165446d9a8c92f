"""The results table: ratios to the floor against the issue's budgets, GB-seconds, and bench/results.md."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.harness import CONFIGURATIONS, LARGEST, OVERSIZE, ROOT, Plan, Results, Samples

DEFAULT_MEMORY_MB = 1024
# Lambda sizes memory in 1 MB steps; round the recommendation to a multiple of this, above the peak
# plus headroom (the runtime's own process and the Python heap's fragmentation vary run to run).
MEMORY_STEP_MB = 64
HEADROOM = 1.25


@dataclass(frozen=True)
class Row:
    measure: str
    unit: str
    floor: float | None
    handler: float | None
    budget: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.handler / self.floor if self.floor and self.handler is not None else None

    @property
    def verdict(self) -> str:
        if self.budget is None or self.ratio is None:
            return ""
        return "PASS" if self.ratio <= self.budget else "FAIL"


def _row(measure: str, unit: str, samples: Samples | None, budget: float | None = None) -> Row | None:
    if samples is None:
        return None
    return Row(measure, unit, samples.median("floor"), samples.median("handler"), budget)


# Issue 13's budgets, ratios to the floor measured in the same run. Idempotency adds one DynamoDB request per
# mail that the floor does not make (the send's claim): "as deployed (idempotency on) small mail <= 2x".
# The whole template's row has no budget: team replies and the delivery trace, built after that budget was set,
# add the reply record and the trace items to the claim's transaction (docs/benchmark.md).
COLD_START_BUDGET = 1.25
SMALL_MAIL_BUDGET = 1.5
SMALL_MAIL_IDEMPOTENT_BUDGET = 2.0
LARGE_MAIL_TIME_BUDGET = 1.10
LARGE_MAIL_MEMORY_BUDGET = 1.05
LARGE_MAIL = "30mb"


def _configuration(plan: Plan) -> str:
    if plan.deployed:
        return (
            "as deployed (template.yaml): idempotency, team replies (reply table, signing secret), delivery trace, "
            "configuration set, all DynamoDB"
        )
    return f"idempotency {'ON (DynamoDB, completed from Send events as deployed)' if plan.idempotency else 'off'}"


def _small_budget(configuration: str) -> float | None:
    return {"default": SMALL_MAIL_BUDGET, "idempotency": SMALL_MAIL_IDEMPOTENT_BUDGET}.get(configuration)


def rows(results: Results) -> list[Row]:
    """Every measured row, the budget rows carrying their budget."""
    plan = results.plan
    idempotent = plan.idempotency or plan.deployed
    cold = None if idempotent else COLD_START_BUDGET
    small = _small_budget("deployed" if plan.deployed else "idempotency" if plan.idempotency else "default")
    large_time, large_memory = (None, None) if idempotent else (LARGE_MAIL_TIME_BUDGET, LARGE_MAIL_MEMORY_BUDGET)
    found = [
        _row("cold start (spawn -> first mail sent)", "ms", results.cold, cold),
        _row("cold start: CPU time (user + sys)", "ms", results.cold_cpu),
        _row("cold start: importing the handler module", "ms", results.cold_import),
        _row("cold start: first invocation", "ms", results.cold_first),
        _row("cold start: peak RSS", "MiB", results.cold_rss),
        _row("small mail (5 KB): time per message", "ms", results.small, small),
        _row("small mail (5 KB): CPU per message", "ms", results.small_cpu),
        _row("small mail (5 KB): peak RSS after the loop", "MiB", results.small_rss),
    ]
    for name, (times, cpu) in results.configured.items():
        label = CONFIGURATIONS[name]
        found += [
            _row(f"small mail (5 KB), {label}: time per message", "ms", times, _small_budget(name)),
            _row(f"small mail (5 KB), {label}: CPU per message", "ms", cpu),
        ]
    for name in results.time:
        label = "41 MB (oversize notice)" if name == OVERSIZE else name.replace("mb", " MB")
        large = name == LARGE_MAIL
        found += [
            _row(f"{label} mail: time", "ms", results.time[name], large_time if large else None),
            _row(f"{label} mail: peak RSS", "MiB", results.rss[name], large_memory if large else None),
            _row(f"{label} mail: RSS above warm baseline", "MiB", results.rss_delta[name]),
        ]
    return [row for row in found if row is not None and (row.floor, row.handler) != (None, None)]


def configured_memory(template: Path, override: int | None) -> tuple[int, str]:
    """The forwarder function's MemorySize and where it came from: --memory-mb, template.yaml, or the default."""
    if override is not None:
        return override, "--memory-mb"
    if template.exists():
        # The resource whose Handler is the forwarder's, else the Globals section: the text between
        # two top-level-in-section keys (two-space indent), so that other functions' sizes are not read.
        blocks = re.split(r"^  (?=[A-Za-z0-9]+:\s*$)", template.read_text(), flags=re.M)
        for wanted, label in (
            (r"Handler:\s*forwarder\.app\.lambda_handler", "template.yaml"),
            (r"^Function:", "Globals"),
        ):
            for block in blocks:
                if re.search(wanted, block, re.M):
                    size = re.search(r"^\s*MemorySize:\s*(\d+)\s*$", block, re.M)
                    if size:
                        return int(size.group(1)), label
    return DEFAULT_MEMORY_MB, "default: no MemorySize for forwarder.app.lambda_handler in template.yaml"


def gb_seconds(memory_mb: int, milliseconds: float | None) -> float | None:
    """Lambda GB-seconds for 1,000 invocations of `milliseconds` each (billed per started ms)."""
    if milliseconds is None:
        return None
    return memory_mb / 1024 * math.ceil(milliseconds) / 1000 * 1000


def recommended_memory(peak_mib: float) -> int:
    return max(128, math.ceil(peak_mib * HEADROOM / MEMORY_STEP_MB) * MEMORY_STEP_MB)


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def table(found: list[Row]) -> list[str]:
    lines = [
        "| measure | unit | floor | forwarder | ratio | budget | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in found:
        budget = f"≤ {row.budget:g}x" if row.budget else ""
        lines.append(
            f"| {row.measure} | {row.unit} | {_number(row.floor)} | {_number(row.handler)} | "
            f"{_ratio(row.ratio)} | {budget} | {row.verdict} |"
        )
    return lines


def cost_lines(results: Results, memory_mb: int, source: str) -> list[str]:
    lines = [
        f"Memory size: {memory_mb} MB ({source}). Durations are this machine's; Lambda gives "
        f"{memory_mb / 1769:.2f} vCPU at this size, so CPU-bound time there is longer by about "
        f"{max(1.0, 1769 / memory_mb):.1f}x for both sides.",
        "",
        "| mails | floor GB-s / 1,000 | forwarder GB-s / 1,000 | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, samples in (("5 KB", results.small), ("10 MB", results.time.get("10mb"))):
        if samples is None or samples.median("handler") is None:
            continue
        floor = gb_seconds(memory_mb, samples.median("floor"))
        handler = gb_seconds(memory_mb, samples.median("handler"))
        ratio = handler / floor if floor and handler is not None else None
        lines.append(f"| {label} | {_number(floor, 3)} | {_number(handler, 3)} | {_ratio(ratio)} |")
    return lines


def memory_lines(results: Results) -> list[str]:
    peaks = {name: results.rss[name].median("handler") for name in (LARGEST, OVERSIZE) if name in results.rss}
    peaks = {name: peak for name, peak in peaks.items() if peak is not None}
    if not peaks:
        return []
    worst = max(peaks.values())
    labels = {LARGEST: "largest forwarded mail", OVERSIZE: "oversize notice"}
    described = ", ".join(
        f"{labels[name]} ({results.mail_bytes[name]:,} bytes): {peak:.0f} MiB" for name, peak in peaks.items()
    )
    return [
        f"Peak RSS of the forwarder, median of the rounds: {described}.",
        f"MemorySize from the worst of these x{HEADROOM} headroom, in {MEMORY_STEP_MB} MB steps: "
        f"**{recommended_memory(worst)} MB**.",
    ]


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("boto3", "botocore", "aws-lambda-powertools", "aws-xray-sdk"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "os": platform.platform(),
        "revision": revision,
        "versions": ", ".join(f"{name} {version}" for name, version in versions.items()),
    }


def markdown(results: Results, memory_mb: int, source: str) -> str:
    info = machine()
    plan = results.plan
    found = rows(results)
    failed = [row.measure for row in found if row.verdict == "FAIL"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); how it measures: docs/benchmark.md.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']}; {info['os']}",
        f"- Python: {info['python']}",
        f"- packages: {info['versions']}",
        f"- forwarder revision: {info['revision']}",
        f"- plan: {plan.rounds} rounds, {plan.warm_count} small mails per warm process, {_configuration(plan)}; "
        f"{results.runs} processes in {results.seconds:.0f} s"
        + (f"; forwarder package from PYTHONPATH={plan.pythonpath}" if plan.pythonpath else ""),
        (
            "- X-Ray ON for the forwarder (Lambda-like environment, segments sent over UDP to nobody); the floor "
            "has no tracing"
            if plan.xray
            else "- X-Ray off on both sides (POWERTOOLS_TRACE_DISABLED=1; the floor has no tracing)"
        ),
        "- both sides: forwarder logs at INFO to /dev/null, the same fake AWS over HTTP on 127.0.0.1, the same "
        "botocore client settings",
        "- medians over the rounds; every process is fresh; peak RSS is VmHWM (MiB)",
        "",
        *table(found),
        "",
        f"Budgets: {'all met' if not failed else 'FAILED: ' + '; '.join(failed)}.",
        *_unbudgeted(results),
        "",
        "## Lambda cost",
        "",
        *cost_lines(results, memory_mb, source),
        "",
    ]
    memory = memory_lines(results)
    if memory:
        lines += ["## Memory size", "", *memory, ""]
    return "\n".join(lines)


def _unbudgeted(results: Results) -> list[str]:
    if not (results.plan.deployed or "deployed" in results.configured):
        return []
    return [
        "",
        "The whole template's small mail has no budget of its own. Issue 13's \"as deployed (idempotency on)\" budget "
        "is the idempotency row; team replies and the delivery trace, built after it was set, add the reply record "
        'and the trace items to the claim\'s transaction (docs/benchmark.md, "As deployed").',
    ]


def console(results: Results, memory_mb: int, source: str) -> str:
    return "\n".join(
        [*table(rows(results)), "", *cost_lines(results, memory_mb, source), "", *memory_lines(results)]
    ).rstrip()
