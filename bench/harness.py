"""Runs the forwarder and the floor in fresh processes against the fake AWS and collects the numbers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder.config import SES_V2_RAW_LIMIT

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CHILD = BENCH / "child.py"
SEED_MAIL = ROOT / "events" / "mail" / "workshop.eml"

DOMAIN = "bench.example.org"
BUCKET = "bench-forwarder-mail"
PREFIX = "inbound/"
ALIAS_PATH = "/email-forwarder/bench/aliases"
TABLE = "bench-forwarder-idempotency"
REPLY_TABLE = "bench-forwarder-replies"
TRACE_TABLE = "bench-forwarder-trace"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-link-key-AbCdEf"
MEMBERS = ("yating.chen@example.com", "weijie.lin@example.net")
MAX_MESSAGE_BYTES = SES_V2_RAW_LIMIT
SIDES = ("floor", "handler")
MEASURES = ("cold", "small", "mail")

# name -> size in bytes of the generated mail (forwarder_ops.samples.with_attachment).
SMALL = "small"
SIZES = {"1mb": 1_000_000, "10mb": 10_000_000, "30mb": 30_000_000}
# The largest mail that is still forwarded (headers grow a little in the rewrite), and one over the
# limit, which takes the oversize-notice path instead.
LARGEST = "40mb"
OVERSIZE = "oversize"
EXTRA_SIZES = {LARGEST: MAX_MESSAGE_BYTES - 2_000, OVERSIZE: 41_000_000}


class HarnessError(RuntimeError):
    """The benchmark could not measure what it claims to (a crash, a mail not forwarded, a wrong count)."""


@dataclass(frozen=True)
class Plan:
    rounds: int = 7
    warm_count: int = 300
    sizes: tuple[str, ...] = tuple(SIZES)
    largest: bool = True
    idempotency: bool = False
    check: bool = True
    only: tuple[str, ...] = MEASURES
    pythonpath: str | None = None  # a candidate forwarder package to measure instead of the working tree
    xray: bool = False
    # The template's configuration (implies idempotency): team replies (reply table, signing secret), the
    # delivery trace and the configuration set, each of which adds requests per mail.
    deployed: bool = False
    # Other configurations whose small-mail loop is measured in the same run, against the same floor rounds:
    # CONFIGURATIONS' keys. The default `make bench` measures both, so that bench/results.md shows every budget.
    configurations: tuple[str, ...] = ()


# The small-mail configurations a run can add (Plan.configurations), and how the results name them.
CONFIGURATIONS = {
    "idempotency": "idempotency on",
    "deployed": "as deployed (idempotency, team replies, delivery trace)",
}


@dataclass
class Samples:
    """Every round's value of one measure, per side."""

    values: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})

    def add(self, side: str, value: float) -> None:
        self.values[side].append(value)

    def median(self, side: str) -> float | None:
        return statistics.median(self.values[side]) if self.values[side] else None

    def ratio(self) -> float | None:
        floor, handler = self.median("floor"), self.median("handler")
        return handler / floor if floor and handler is not None else None


def prepare(work: Path) -> dict[str, Path]:
    """Generate the deterministic mails and their SES events under `work`; returns name -> event path."""
    from forwarder_ops.local import build_event
    from forwarder_ops.samples import with_attachment

    seed = SEED_MAIL.read_bytes()
    mails, events = work / "mails", work / "events"
    mails.mkdir(parents=True, exist_ok=True)
    events.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, size in {SMALL: 5_000, **SIZES, **EXTRA_SIZES}.items():
        raw = with_attachment(seed, size, f"bench-{name}")
        mail = mails / f"{name}.eml"
        if not mail.exists() or mail.read_bytes() != raw:
            mail.write_bytes(raw)
        event = build_event(raw, [f"team@{DOMAIN}"], message_id=f"{name}.0")
        paths[name] = events / f"{name}.json"
        paths[name].write_text(json.dumps(event))
    (work / "aliases.json").write_text(json.dumps({"team": ",".join(MEMBERS)}))
    # botocore reads the S3 addressing style from the config file only (no environment variable).
    (work / "aws-config").write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    return paths


def mail_size(work: Path, name: str) -> int:
    return (work / "mails" / f"{name}.eml").stat().st_size


@contextmanager
def fake_aws(work: Path) -> Iterator[str]:
    """The fake AWS server in its own process; yields its endpoint URL."""
    command = [sys.executable, str(BENCH / "fakeaws.py"), "--mails", str(work / "mails")]
    server = subprocess.Popen(
        [*command, "--aliases", str(work / "aliases.json")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.strip().isdigit():
            raise HarnessError("the fake AWS server did not start")
        yield f"http://127.0.0.1:{line.strip()}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def environment(
    endpoint: str,
    work: Path,
    idempotency: bool,
    pythonpath: str | None = None,
    xray: bool = False,
    deployed: bool = False,
) -> dict[str, str]:
    """The environment of every measured process, the same for the forwarder and the floor."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(work / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "FORWARDER_DOMAIN": DOMAIN,
        "FORWARDER_BUCKET": BUCKET,
        "FORWARDER_PREFIX": PREFIX,
        "FORWARDER_ALIAS_PATH": ALIAS_PATH,
        "FORWARDER_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "ses-forwarder",
        "POWERTOOLS_METRICS_NAMESPACE": "SesForwarder",
        "BENCH_MEMBERS": ",".join(MEMBERS),
    }
    if idempotency or deployed:
        # As the template deploys it: claims completed from SES's Send events, which the configuration set carries.
        env["FORWARDER_IDEMPOTENCY_TABLE"] = TABLE
        env["FORWARDER_IDEMPOTENCY_COMPLETION"] = "send-event"
        env["FORWARDER_CONFIGURATION_SET"] = "bench-forwarder"
    if deployed:
        # What template.yaml sets beyond idempotency: every forwarded mail also saves its reply address
        # (team mode) and writes its trace record; the configuration set only tags the send.
        env["FORWARDER_REPLY_MODE"] = "team"
        env["FORWARDER_REPLY_TABLE"] = REPLY_TABLE
        env["FORWARDER_LINK_SECRET"] = SECRET
        env["FORWARDER_LINK_URL"] = "https://bench.lambda-url.us-east-1.on.aws/"
        env["FORWARDER_TRACE_TABLE"] = TRACE_TABLE
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if xray:
        # What `Tracing: Active` means in Lambda: the runtime's trace header, the daemon's address (UDP,
        # nobody listens: segments are sent and lost), and no switch turning Powertools' Tracer off.
        del env["POWERTOOLS_TRACE_DISABLED"]
        env["LAMBDA_TASK_ROOT"] = str(ROOT)
        env["_X_AMZN_TRACE_ID"] = "Root=1-67890abc-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
        env["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:2000"
        env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"
    return env


class Runner:
    """Spawns measured processes and checks what the fake AWS saw."""

    def __init__(self, work: Path, endpoint: str, env: dict[str, str], check: bool) -> None:
        self.work, self.endpoint, self.env, self.check = work, endpoint, env, check
        self.runs = 0

    def _server(self, path: str, data: bytes | None = None) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + path, data=data, timeout=10) as response:
            return json.loads(response.read())

    def spawn(
        self, spec: dict[str, Any], extra_args: tuple[str, ...] = (), wrapper: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], float]:
        """Run one child (under `wrapper`, a command such as valgrind, if given); returns its result and the
        wall time from spawn to its first forwarded mail (cold)."""
        self.runs += 1
        result_path = self.work / "result.json"
        result_path.unlink(missing_ok=True)
        stderr_path = self.work / "child.stderr"
        self._server("/_bench/reset", b"")
        read_end, write_end = os.pipe()
        spec = {**spec, "result": str(result_path), "ready_fd": write_end}
        with stderr_path.open("wb") as stderr:
            started = time.perf_counter()
            child = subprocess.Popen(
                [*wrapper, sys.executable, *extra_args, str(CHILD), json.dumps(spec)],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,  # the forwarder's logs and EMF metrics: written, not kept
                stderr=stderr,
                pass_fds=(write_end,),
            )
            os.close(write_end)
            ready = os.read(read_end, 1)
            elapsed = time.perf_counter() - started
            os.close(read_end)
            _, status, usage = os.wait4(child.pid, 0)  # not Popen.wait(): the child's CPU time comes with it
            child.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0 or not result_path.exists():
            tail = stderr_path.read_text(errors="replace")[-3000:]
            raise HarnessError(f"{spec['side']} {spec['mode']} exited {code}:\n{tail}")
        result = json.loads(result_path.read_text())
        result["process_cpu_ms"] = (usage.ru_utime + usage.ru_stime) * 1e3
        if spec["mode"] == "cold" and ready != b"1":
            raise HarnessError("the cold-start child did not report its first forward")
        if self.check:
            self._verify(spec, result)
        return result, elapsed * 1e3

    def _verify(self, spec: dict[str, Any], result: dict[str, Any]) -> None:
        counts = self._server("/_bench/stats")["counts"]
        invocations = 1 if spec["mode"] == "cold" else 1 + (spec.get("count", 1) if spec["mode"] == "warm" else 1)
        expected_oversize = Path(spec["event"]).stem == OVERSIZE
        problems = []
        if not result["check"]["forwarded"]:
            problems.append("the measured mail was not forwarded")
        if result["check"]["oversize"] != expected_oversize:
            problems.append(f"oversize is {result['check']['oversize']}, expected {expected_oversize}")
        for operation in ("s3:GetObject", "sesv2:SendEmail"):
            if counts.get(operation, 0) != invocations:
                problems.append(f"{operation}: {counts.get(operation, 0)} calls, expected {invocations}")
        if spec["side"] == "handler" and not counts.get("ssm:GetParametersByPath"):
            problems.append("the alias lists were never read from SSM")
        problems += self._dynamodb_problems(spec["side"], counts, invocations)
        if counts.get("unknown") or counts.get("s3:NoSuchKey"):
            problems.append(f"unexpected requests: {counts}")
        if problems:
            raise HarnessError(f"{spec['side']} {spec['mode']} {Path(spec['event']).stem}: " + "; ".join(problems))

    def _dynamodb_problems(self, side: str, counts: dict[str, int], invocations: int) -> list[str]:
        """The DynamoDB requests each configuration must make per mail (one batch per mail here)."""
        if side != "handler":
            return []
        env, problems = self.env, []
        claims = "FORWARDER_IDEMPOTENCY_TABLE" in env
        riders = claims and ("FORWARDER_TRACE_TABLE" in env or "FORWARDER_REPLY_TABLE" in env)
        send_event = env.get("FORWARDER_IDEMPOTENCY_COMPLETION") == "send-event"
        expected: dict[str, int] = {}
        if claims:
            # The claim: with the trace and reply writes in one transaction, or alone.
            expected["TransactWriteItems" if riders else "PutItem"] = invocations
            expected["UpdateItem"] = 0 if send_event else invocations  # the completion
        else:
            expected["BatchWriteItem"] = invocations if "FORWARDER_TRACE_TABLE" in env else 0
            expected["UpdateItem"] = invocations if "FORWARDER_REPLY_TABLE" in env else 0
        for operation, count in expected.items():
            seen = counts.get(f"dynamodb:{operation}", 0)
            if seen != count:
                problems.append(f"DynamoDB {operation}: {seen} calls for {invocations} mails, expected {count}")
        return problems


@dataclass
class Results:
    plan: Plan
    cold: Samples = field(default_factory=Samples)
    cold_cpu: Samples = field(default_factory=Samples)
    cold_import: Samples = field(default_factory=Samples)
    cold_first: Samples = field(default_factory=Samples)
    cold_rss: Samples = field(default_factory=Samples)
    small: Samples = field(default_factory=Samples)
    small_cpu: Samples = field(default_factory=Samples)
    small_rss: Samples = field(default_factory=Samples)
    # Plan.configurations: name -> (time per message, CPU per message) of the small-mail loop.
    configured: dict[str, tuple[Samples, Samples]] = field(default_factory=dict)
    time: dict[str, Samples] = field(default_factory=dict)
    rss: dict[str, Samples] = field(default_factory=dict)
    rss_delta: dict[str, Samples] = field(default_factory=dict)
    mail_bytes: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    seconds: float = 0.0


def _order(round_number: int) -> tuple[str, ...]:
    """Alternate which side goes first, so that drift in the machine favours neither."""
    return SIDES if round_number % 2 == 0 else SIDES[::-1]


def run(plan: Plan, work: Path, progress: Any = print) -> Results:
    """Measure everything in `plan`; raises `HarnessError` when a run cannot be trusted."""
    started = time.perf_counter()
    events = prepare(work)
    results = Results(plan, mail_bytes={name: mail_size(work, name) for name in events})
    big = [*plan.sizes, *((LARGEST, OVERSIZE) if plan.largest else ())] if "mail" in plan.only else []
    with fake_aws(work) as endpoint:
        env = environment(endpoint, work, plan.idempotency, plan.pythonpath, plan.xray, plan.deployed)
        runner = Runner(work, endpoint, env, plan.check)
        others = {
            name: Runner(
                work,
                endpoint,
                environment(endpoint, work, name == "idempotency", plan.pythonpath, plan.xray, name == "deployed"),
                plan.check,
            )
            for name in (plan.configurations if "small" in plan.only else ())
        }
        small = str(events[SMALL])
        for side in SIDES:  # compile bytecode and warm the page cache; not measured
            runner.spawn({"side": side, "mode": "cold", "event": small})
        for number in range(plan.rounds):
            progress(f"round {number + 1}/{plan.rounds}")
            for side in _order(number) if "cold" in plan.only else ():
                result, elapsed = runner.spawn({"side": side, "mode": "cold", "event": small})
                results.cold.add(side, elapsed)
                results.cold_cpu.add(side, result["process_cpu_ms"])
                results.cold_import.add(side, result["import_ms"])
                results.cold_first.add(side, result["first_ms"])
                results.cold_rss.add(side, result["max_rss_kb"] / 1024)
            for side in _order(number) if "small" in plan.only else ():
                spec = {"side": side, "mode": "warm", "event": small, "warmup": small, "count": plan.warm_count}
                result, _ = runner.spawn(spec)
                results.small.add(side, statistics.fmean(result["times_ms"]))
                results.small_cpu.add(side, result["cpu_ms"] / plan.warm_count)
                results.small_rss.add(side, result["max_rss_kb"] / 1024)
            for name, other in others.items():
                times, cpu = results.configured.setdefault(name, (Samples(), Samples()))
                for side in _order(number):
                    spec = {"side": side, "mode": "warm", "event": small, "warmup": small, "count": plan.warm_count}
                    result, _ = other.spawn(spec)
                    times.add(side, statistics.fmean(result["times_ms"]))
                    cpu.add(side, result["cpu_ms"] / plan.warm_count)
            for name in big:
                sides = ("handler",) if name == OVERSIZE else _order(number)
                for side in sides:
                    spec = {"side": side, "mode": "big", "event": str(events[name]), "warmup": small}
                    result, _ = runner.spawn(spec)
                    results.time.setdefault(name, Samples()).add(side, result["times_ms"][0])
                    results.rss.setdefault(name, Samples()).add(side, result["max_rss_kb"] / 1024)
                    delta = (result["max_rss_kb"] - result["baseline_rss_kb"]) / 1024
                    results.rss_delta.setdefault(name, Samples()).add(side, delta)
        results.runs = runner.runs + sum(other.runs for other in others.values())
    results.seconds = time.perf_counter() - started
    return results
