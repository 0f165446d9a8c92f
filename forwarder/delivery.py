"""Lambda entry point: `forwarder.delivery.lambda_handler`, subscribed to the configuration set's SNS topic.

Each SES event (Send, Delivery, Bounce, Complaint, Reject, DeliveryDelay, Rendering Failure) becomes one
history entry per member in the trace table; a member's permanent bounce or complaint notifies the
alarm topic once. So does the outside sender's, for a reply a member sent as the team (the send's
`outside` tag), with advice of its own: that address is no member, nothing in the aliases is wrong.
With FORWARDER_IDEMPOTENCY_TABLE set, an event of a send that carried the `claim` tag
completes the forwarder's claim of that send (the forwarder's send-event mode: it writes nothing after a
send): its Send event, or any later one (Delivery, Bounce, Complaint, DeliveryDelay, Reject), should the Send
event be lost or late; the first one completes it, the others find it completed. A record this function cannot
read is logged and skipped (SNS would redeliver it in vain); a table or topic failure raises, so that Lambda
retries the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from forwarder.config import DeliverySettings, load_settings
from forwarder.feedback import NOT_SENT_TO, FeedbackError, MemberEvent, parse_record, send_claim, sns_messages
from forwarder.observability import logger, metrics, tracer
from forwarder.trace import PROBLEMS

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from forwarder.ports import DeliveryTrace, Notifier


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one invocation did: steps added, redeliveries ignored, records skipped, alarms sent."""

    added: int = 0
    duplicates: int = 0
    skipped: int = 0
    alarms: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Record every SES event of `event`; raising asks Lambda to retry the whole event."""
    return record_events(event, *get_adapters())


def record_events(
    event: dict[str, Any],
    trace: DeliveryTrace,
    alarm: Notifier | None,
    complete: Callable[[str, str, bool], bool] | None = None,
) -> dict[str, int]:
    """The handler's work with the adapters passed in: tests call it with moto or fakes. `complete(claim,
    ses_id, notice)` completes a forwarder's send claim from an event of the send (send-event mode): False
    when the claim was not in progress (an earlier event of the send completed it)."""
    added = duplicates = skipped = alarms = 0
    try:
        messages = sns_messages(event)
    except FeedbackError as error:
        logger.error("not an SNS event; nothing recorded", extra={"error": str(error)})
        return Recorded(skipped=1).as_dict()
    for sns_id, text in messages:
        try:
            if text is None:
                raise FeedbackError("SNS record without a Message")
            steps = parse_record(text)
            claim = send_claim(text) if complete is not None else None
        except FeedbackError as error:
            logger.warning("unreadable SES event skipped", extra={"sns_message_id": sns_id, "error": str(error)})
            skipped += 1
            continue
        # The claim first: the forwarder's idempotency must not wait for (or, once Lambda drops the event after
        # its retries, lose to) a trace write that fails.
        if claim is not None and complete is not None and complete(*claim):
            logger.info("send claim completed from an event of its send", extra={"ses_message_id": claim[1]})
        if not steps:
            logger.info("SES event without our tags or members skipped", extra={"sns_message_id": sns_id})
            skipped += 1
        for step in steps:
            if trace.add_event(step.inbound, step.alias, step.member, step.entry):
                added += 1
                count_state(step.entry.state, outside=step.entry.outside)
                logger.info(
                    "member state recorded",
                    extra={"message_id": step.inbound, "alias": step.alias, "state": step.entry.state},
                )
            else:
                duplicates += 1
            # A redelivered step alarms too: the delivery that recorded it may have failed to publish the alarm
            # (the retry finds the step recorded). The alarm's claim keeps it to one.
            alarms += notify_once(step, trace, alarm)
    return Recorded(added, duplicates, skipped, alarms).as_dict()


def count_state(state: str, outside: bool = False) -> None:
    """EMF metrics: MemberEvents for every recorded step, Member<State> for those that mean a member lost mail
    (MemberBounced, MemberSuppressed, MemberComplained, ...), to alarm on or graph per environment; the outside
    sender of a relayed reply is no member: its problems count as Outside<State> (OutsideBounced, ...)."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name="MemberEvents", unit=MetricUnit.Count, value=1)
    if state in PROBLEMS:
        who = "Outside" if outside else "Member"
        metrics.add_metric(name=f"{who}{state.capitalize()}", unit=MetricUnit.Count, value=1)


def notify_once(step: MemberEvent, trace: DeliveryTrace, alarm: Notifier | None) -> int:
    """Tell the alarm topic about a member's permanent bounce or complaint, once per alias, member and kind
    within the retention period (the claim is a conditional write in the trace table)."""
    kind = step.alarm_kind
    if kind is None or alarm is None:
        return 0
    alias = trace.member_alias(step.inbound, step.member) or step.alias
    # A complaint that may be any of several members alarms once, claimed under the event itself: once per member, it
    # would alarm each of them and use up the claim that a complaint of their own needs.
    unsure = bool(step.among) and not step.entry.outside
    claimed = f"complaint#{step.entry.key}" if unsure else step.member
    if not trace.claim_alarm(alias, claimed, kind):
        return 0
    write = _unsure_alarm if unsure else _outside_alarm if step.entry.outside else _member_alarm
    subject, message = write(step, alias, kind)
    try:
        alarm.notify(subject, message)
    except Exception:
        trace.release_alarm(alias, claimed, kind)
        raise
    logger.warning("alarm sent", extra={"message_id": step.inbound, "alias": alias, "kind": kind})
    return 1


def _subject(text: str) -> str:
    """An alarm's subject as SNS takes it: "UTF-8 text with no line breaks or control characters, and less than 100
    characters long". The address in it is the one SES names, a receiving server's Final-Recipient when it bounced."""
    return "".join(c if c.isprintable() else "?" for c in text)[:99]


def _member_alarm(step: MemberEvent, alias: str, kind: str) -> tuple[str, str]:
    what = "complained about (marked as spam)" if kind == "complaint" else "could not be delivered to"
    subject = _subject(f"Forwarder: {step.member} of alias {alias}: {kind}")
    advice = (
        "A member who keeps bouncing hurts the account's reputation: fix or remove the address "
        "(forwarder aliases remove ...); a suppressed address receives nothing until "
        "`forwarder suppression remove ADDRESS`"
    )
    if NOT_SENT_TO in step.entry.detail:
        # SES named the address a member's mailbox forwards to: removing it from the alias would change nothing.
        advice = (
            f"{step.member} is {NOT_SENT_TO}: ask the members of {alias} whose mailbox forwards there to fix "
            "their forwarding"
        )
    message = (
        f"Mail forwarded by alias {alias} {what} {step.member}.\n\n"
        f"Inbound message: {step.inbound}\nSES says: {step.entry.state}: {step.entry.detail}\n\n"
        f"See the whole path: forwarder trace {step.inbound} --config-env ENV\n"
        f"{advice} (this alarm is sent once per member within the retention)."
    )
    return subject, message


def _unsure_alarm(step: MemberEvent, alias: str, kind: str) -> tuple[str, str]:
    """The alarm of a complaint whose provider did not say which of the members SES names complained."""
    named = ", ".join(step.among)
    subject = _subject(f"Forwarder: alias {alias}: complaint by one of {len(step.among)} members")
    message = (
        f"Mail forwarded by alias {alias} was marked as spam by one of these members: {named}. The provider did not "
        "say which: SES names every recipient of the send at that provider.\n\n"
        f"Inbound message: {step.inbound}\nSES says: {step.entry.state}: {step.entry.detail}\n\n"
        f"See the whole path: forwarder trace {step.inbound} --config-env ENV\n"
        "Ask them before removing anyone from the alias. (This alarm is sent once per complaint; a complaint that "
        "names one member alarms of its own.)"
    )
    return subject, message


def _outside_alarm(step: MemberEvent, alias: str, kind: str) -> tuple[str, str]:
    """The alarm of an outside address a member's reply was relayed to: that address is not on the alias, so
    the member alarm's fix (remove it from the alias) would be wrong; the member who wrote believes it arrived."""
    outsider = step.member
    if kind == "complaint":
        what = f"{outsider} marked a reply sent as alias {alias} as spam"
        advice = (
            "Complaints hurt the account's reputation: the team should not write to this address again unless "
            "it asks them to."
        )
    else:
        # The send went to the outside sender and, in Cc, the other outside people of the conversation: which one
        # this is, the tag does not say.
        what = (
            f"A reply sent as alias {alias} could not be delivered to {outsider}, an outside address it answered "
            "(the sender, or someone they wrote to)"
        )
        advice = (
            "The member who wrote the reply believes it arrived: tell them (the trace shows the reply), so that "
            f"they reach {outsider} another way. If SES suppressed the address, it receives nothing until "
            f"`forwarder suppression remove {outsider}` once it works again."
        )
    subject = _subject(f"Forwarder: reply of alias {alias} to {outsider}: {kind}")
    message = (
        f"{what}.\n\n"
        f"Inbound message (the member's reply): {step.inbound}\n"
        f"SES says: {step.entry.state}: {step.entry.detail}\n\n"
        f"See the whole path: forwarder trace {step.inbound} --config-env ENV\n"
        f"{outsider} is not a member of {alias}: nothing to change in the aliases. {advice} "
        "(This alarm is sent once per address within the retention.)"
    )
    return subject, message


class SnsNotifier:
    """Publishes to the stack's alarm topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def notify(self, subject: str, message: str) -> None:
        self._client.publish(TopicArn=self.topic_arn, Subject=subject, Message=message)


@cache
def get_adapters() -> tuple[DeliveryTrace, Notifier | None, Callable[[str, str, bool], bool] | None]:
    """The trace table, the alarm topic and the completer of send claims of this process, built once."""
    import boto3

    from forwarder.aws.trace import DynamoDBTrace
    from forwarder.clients import client_config

    settings = load_settings(DeliverySettings)
    dynamodb = boto3.client("dynamodb", config=client_config())
    trace = DynamoDBTrace(dynamodb, settings.trace_table, settings.trace_expiry_days)
    complete = None
    if settings.idempotency_table:
        from forwarder.aws.claims import complete_from_send_event

        complete = partial(complete_from_send_event, dynamodb, settings.idempotency_table)
    alarm = (
        SnsNotifier(boto3.client("sns", config=client_config()), settings.alarm_topic_arn)
        if settings.alarm_topic_arn
        else None
    )
    return trace, alarm, complete
