"""Delivery: where each alert goes and getting it there, never silently lost.

- message: the Message a channel sends, a channel's DeliveryResult, the outbox's JSON form
- routing (pure) and routes_file: receivers, routes, grouping, repeats; routes.yml
- links (pure): runbook, dashboard and console links made real for this installation
- wording (pure), email, slack, templates/: what a message says, rendered and sent once
- webhook (Alertmanager's payload, version 4), pagerduty (Events API v2), http (their one post
  and its answer)
- channels: the channel behind each receiver
- outbox: the worker that claims, sends, retries and marks
- mailsink: the local SMTP sink of `make run`
"""
