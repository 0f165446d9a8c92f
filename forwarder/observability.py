"""The Powertools logger, metrics and tracer shared by the handler and the service."""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from forwarder.mail.policy import RELAYED

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from forwarder.ports import Outcome

SERVICE = "ses-forwarder"
NAMESPACE = "SesForwarder"


class _Segment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class NoTracing(BaseProvider):
    """The tracer provider when X-Ray is off: Powertools' own provider imports the X-Ray SDK (about
    100 ms of cold start, and a UDP socket) even when tracing is disabled."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _Segment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncGenerator[BaseSegment, None]:
        yield _Segment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Sequence[str]) -> None: ...
    def patch_all(self) -> None: ...


def tracing_enabled() -> bool:
    """X-Ray tracing runs only inside Lambda (not under SAM local) unless POWERTOOLS_TRACE_DISABLED."""
    disabled = os.getenv("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on")
    return bool(os.getenv("LAMBDA_TASK_ROOT")) and not os.getenv("AWS_SAM_LOCAL") and not disabled


logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE) if tracing_enabled() else Tracer(service=SERVICE, disabled=True, provider=NoTracing())


def count_outcome(outcome: Outcome) -> None:
    """EMF metrics of one message: Forwarded and Recipients, or Dropped (in total and by reason)."""
    if outcome.forwarded:
        metrics.add_metric(name="Forwarded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Recipients", unit=MetricUnit.Count, value=outcome.recipients)
    elif outcome.reason == "parked":
        metrics.add_metric(name="Parked", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="Dropped", unit=MetricUnit.Count, value=1)
        with single_metric(name="Dropped", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="reason", value=outcome.reason or "unknown")
    if outcome.failed:
        metrics.add_metric(name="RecipientsFailed", unit=MetricUnit.Count, value=len(outcome.failed))
    if outcome.oversize:
        metrics.add_metric(name="Oversize", unit=MetricUnit.Count, value=1)
    count_reply(outcome)


def count_reply(outcome: Outcome) -> None:
    """Mail to a reply address: Replied when relayed to the outside sender, else ReplyRefused by reason
    (dropped ones are also counted as Dropped with that reason, above)."""
    if outcome.reply is None:
        return
    if outcome.reply == RELAYED:
        metrics.add_metric(name="Replied", unit=MetricUnit.Count, value=1)
        return
    with single_metric(name="ReplyRefused", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="reason", value=outcome.reply)
