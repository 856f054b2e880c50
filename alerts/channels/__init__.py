"""Delivery channels: each turns one Message into one email or one Slack post."""

from alerts.channels.base import Channel, DeliveryResult, Message

__all__ = ["Channel", "DeliveryResult", "Message"]
