"""Follow-up outbox: messages to buyers after a call (remedy confirmation, H5 link) or instead
of one, queued in SQLite, linted, handed to a pluggable sender, never sent twice.

    from ivr.outbox import enqueue, lint, deliver, load_outbox_config, load_sender
    mid = enqueue(db, "+8613900000001", text, kind="remedy_refund", dedup_key="remedy:c1:42")
    counts = await deliver(db, load_sender("webhook:http://127.0.0.1:8080/sms"), now=now)
"""

from ivr.outbox.config import OutboxConfig, OutboxConfigError, RetryPolicy, load_outbox_config
from ivr.outbox.deliver import deliver
from ivr.outbox.followup import queue_followups
from ivr.outbox.lint import LintIssue, LintResult, lint, sms_length
from ivr.outbox.senders import (
    FileSender,
    OutboundMessage,
    Sender,
    SendError,
    SendResult,
    WebhookSender,
    load_sender,
)
from ivr.outbox.store import STATES, enqueue, list_messages, requeue

__all__ = [
    "STATES", "FileSender", "LintIssue", "LintResult", "OutboundMessage", "OutboxConfig",
    "OutboxConfigError", "RetryPolicy", "SendError", "SendResult", "Sender", "WebhookSender",
    "deliver", "enqueue", "lint", "list_messages", "load_outbox_config", "load_sender",
    "queue_followups", "requeue", "sms_length",
]
