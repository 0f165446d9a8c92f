"""`python -m bench`: the forwarder against the floor (S3 read + SES v2 send with bare boto3).

Exit status: 0 when the runs were measured (whatever the budgets say, unless --strict), 1 when the
harness failed (a crash, a mail not forwarded, calls the fake AWS did not expect), 2 with --strict when
a budget is not met.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bench.harness import CONFIGURATIONS, MEASURES, ROOT, HarnessError, Plan, run
from bench.report import configured_memory, console, markdown, rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "profile", "instructions"), default="run")
    parser.add_argument("--quick", action="store_true", help="1 round, 30 small mails, no 40 MB runs")
    parser.add_argument(
        "--check", action="store_true", help="a smoke run: verify the harness end to end, write no results file"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when a budget is not met")
    parser.add_argument("--rounds", type=int, help="processes per side and measure (default 7)")
    parser.add_argument("--count", type=int, help="small mails per warm process (default 300)")
    parser.add_argument("--idempotency", action="store_true", help="the forwarder with DynamoDB idempotency on")
    parser.add_argument(
        "--only", action="append", choices=MEASURES, help="measure only this (repeatable): cold, small, mail"
    )
    parser.add_argument(
        "--pythonpath", help="PYTHONPATH of the measured processes: a candidate forwarder package to measure instead"
    )
    parser.add_argument(
        "--deployed",
        action="store_true",
        help="the forwarder as template.yaml configures it: idempotency, team replies, delivery trace",
    )
    parser.add_argument("--xray", action="store_true", help="the forwarder with X-Ray tracing on (Tracing: Active)")
    parser.add_argument("--memory-mb", type=int, help="Lambda memory size for the cost rows (default: template.yaml)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results.md)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work", help="generated mails and scratch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "profile":
        from bench.profiling import profile

        return profile(args.work, args.idempotency, args.deployed)
    if args.command == "instructions":
        from bench.instructions import report

        try:
            return report(args.work, args.idempotency, args.deployed, args.pythonpath)
        except HarnessError as error:
            print(f"bench: harness failure: {error}", file=sys.stderr)
            return 1
    plan = Plan(idempotency=args.idempotency, xray=args.xray, deployed=args.deployed)
    if not (args.idempotency or args.deployed):
        plan = replace(plan, configurations=tuple(CONFIGURATIONS))
    if args.quick:
        plan = replace(plan, rounds=1, warm_count=30, largest=False)
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.count:
        plan = replace(plan, warm_count=args.count)
    if args.only:
        plan = replace(plan, only=tuple(args.only))
    if args.pythonpath:
        plan = replace(plan, pythonpath=args.pythonpath)
    try:
        results = run(plan, args.work, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except HarnessError as error:
        print(f"bench: harness failure: {error}", file=sys.stderr)
        return 1
    memory_mb, source = configured_memory(ROOT / "template.yaml", args.memory_mb)
    print(console(results, memory_mb, source))
    if not args.check:
        suffix = "".join(f"-{name}" for name in ("idempotency", "deployed", "xray") if getattr(args, name))
        default = f"results{suffix}.md"
        out = args.out or ROOT / "bench" / default
        out.write_text(markdown(results, memory_mb, source))
        print(f"\nwritten: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.strict and any(row.verdict == "FAIL" for row in rows(results)):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
