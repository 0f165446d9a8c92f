"""One measured process: the forwarder's real handler or the floor, run on SES events.

`python bench/child.py '<spec JSON>'`. Run as a script, not as `-m bench.child`, and importing only
the stdlib before the handler, so that the forwarder and the floor pay the same interpreter start.

spec: side ("handler" | "floor"), mode ("cold" | "warm" | "big"), event (path of the measured SES
event), warmup (path of the event invoked first in warm/big mode), count (warm invocations),
ready_fd (cold mode: a byte is written there once the first mail is forwarded), result (path of the
JSON written at the end), profile ("cprofile" | "tracemalloc" | null, around the measured phase only),
profile_out (where cProfile's stats go).
"""

import json
import os
import resource
import sys
import time

_STARTED = time.perf_counter()


class Context:
    """Enough of a Lambda context for Powertools' decorators and idempotency."""

    function_name = "email-forwarder-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:email-forwarder-bench"
    log_group_name = "/aws/lambda/email-forwarder-bench"
    log_stream_name = "bench"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def _null_handler(event: dict, context: object) -> dict:
    return {"sent": []}


def _load_handler(side: str):
    if side == "null":  # what the loop costs around the handler (`python -m bench instructions` subtracts it)
        return _null_handler
    if side == "handler":
        from forwarder.app import lambda_handler
    else:
        from floor import lambda_handler  # bench/ is sys.path[0] when this file runs as a script
    return lambda_handler


def _with_id(event: dict, message_id: str) -> dict:
    event["Records"][0]["ses"]["mail"]["messageId"] = message_id
    return event


def _max_rss_kb() -> int:
    """Peak resident set of this process in KiB.

    Linux's VmHWM belongs to the address space created by exec; `ru_maxrss` does not: a child keeps
    the high-water mark of the parent it was forked from (here, the harness that generated 40 MB mails).
    """
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _summary(side: str, response: dict) -> dict:
    """What the check needs to know of one invocation's response."""
    if side in ("floor", "null"):
        return {"forwarded": len(response["sent"]) > 0, "oversize": False, "sent": len(response["sent"])}
    outcome = response["outcomes"][0]
    return {"forwarded": outcome["forwarded"], "oversize": outcome["oversize"], "sent": len(outcome["sent"])}


class _Profile:
    """cProfile or tracemalloc around the measured phase only (diagnostics, never in timed runs)."""

    def __init__(self, kind: str | None, out: str | None) -> None:
        self.kind, self.out = kind, out
        self.report: dict = {}

    def __enter__(self) -> "_Profile":
        if self.kind == "cprofile":
            import cProfile

            self._profiler = cProfile.Profile()
            self._profiler.enable()
        elif self.kind == "tracemalloc":
            import tracemalloc

            tracemalloc.start(1)
        return self

    def __exit__(self, *_: object) -> None:
        if self.kind == "cprofile":
            self._profiler.disable()
            self._profiler.dump_stats(self.out)
        elif self.kind == "tracemalloc":
            import tracemalloc

            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.report = {"traced_current": current, "traced_peak": peak}


def main() -> None:
    spec = json.loads(sys.argv[1])
    side, mode = spec["side"], spec["mode"]
    with open(spec["event"], "rb") as file:
        event = json.loads(file.read())
    result: dict = {"side": side, "mode": mode}

    if mode == "cold":
        with _Profile(spec.get("profile"), spec.get("profile_out")) as profile:
            imported = time.perf_counter()
            handler = _load_handler(side)
            loaded = time.perf_counter()
            response = handler(event, Context("cold-0"))
            done = time.perf_counter()
        os.write(spec["ready_fd"], b"1")
        result.update(
            startup_ms=(imported - _STARTED) * 1e3,
            import_ms=(loaded - imported) * 1e3,
            first_ms=(done - loaded) * 1e3,
            max_rss_kb=_max_rss_kb(),
            check=_summary(side, response),
            profile=profile.report,
        )
    else:
        handler = _load_handler(side)
        with open(spec["warmup"], "rb") as file:
            warmup = json.loads(file.read())
        handler(warmup, Context("warmup-0"))
        baseline_kb = _max_rss_kb()
        base_id = event["Records"][0]["ses"]["mail"]["messageId"].rsplit(".", 1)[0]
        count = spec.get("count", 1) if mode == "warm" else 1
        events = [_with_id(json.loads(json.dumps(event)), f"{base_id}.{n + 1}") for n in range(count)]
        times = []
        cpu_started = time.process_time()
        with _Profile(spec.get("profile"), spec.get("profile_out")) as profile:
            for n, each in enumerate(events):
                started = time.perf_counter()
                response = handler(each, Context(f"run-{n}"))
                times.append(time.perf_counter() - started)
        result.update(
            times_ms=[t * 1e3 for t in times],
            cpu_ms=(time.process_time() - cpu_started) * 1e3,
            baseline_rss_kb=baseline_kb,
            max_rss_kb=_max_rss_kb(),
            check=_summary(side, response),
            profile=profile.report,
        )
    with open(spec["result"], "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
    # Skip interpreter finalisation (a Lambda sandbox is frozen or killed, never shut down cleanly), so
    # that the process CPU time the harness reads is start-up and work only.
    sys.stdout.flush()
    os._exit(0)
