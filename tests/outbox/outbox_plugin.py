"""A third-party sender plugin, loaded as `--sender outbox_plugin.make_sender:ARG`."""

from __future__ import annotations

from ivr.outbox import OutboundMessage, SendResult


class PluginSender:
    idempotent = True

    def __init__(self, arg: str) -> None:
        self.name = f"plugin:{arg}"
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(receipt=str(len(self.sent)))


def make_sender(arg: str) -> PluginSender:
    return PluginSender(arg)


def not_a_sender(arg: str) -> object:
    return object()
