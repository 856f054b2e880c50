"""The stack for development: data servers, our processes and stand-in receivers, started the
same way by `make run` (scripts/run_local.py), the tests and `make bench`.

- servers.py: throwaway PostgreSQL and Redis, scratch databases, free ports, `wait_for`.
- processes.py: the engine, alerts process, mail sink, console and Prometheus as subprocesses.
- stack.py: `Stack`, the parts above started together in order and stopped in reverse.
- receivers.py: a real SMTP server and a Slack stand-in that record what they were sent.
"""
