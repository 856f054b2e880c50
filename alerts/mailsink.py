"""python -m alerts.mailsink: the local mail sink of `make run` (alerts/delivery/mailsink.py)."""

from alerts.delivery.mailsink import main

if __name__ == "__main__":
    raise SystemExit(main())
