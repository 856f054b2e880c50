"""A local SMTP server that keeps every message it receives as a .eml file, for `make run`.

    python -m alerts.mailsink --dir var/mail --port 1025

Nothing is relayed anywhere. Each message becomes `<dir>/<UTC time>-<n>.eml` (written to a
temporary name first, then renamed, so a reader never sees half a file), with the envelope
recipients added as `X-Envelope-To` headers since Bcc-style recipients are not in the headers.
`read_mailbox()` lists them for whoever wants to show them (the console).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self, cast

from aiosmtpd.controller import Controller

log = logging.getLogger("alerts.mailsink")


class _SaveToFolder:
    """aiosmtpd handler: one .eml file per accepted message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        envelope_headers = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        envelope_headers += f"X-Envelope-From: {envelope.mail_from}\r\n"
        with self._lock:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            name = f"{stamp}-{next(self._counter):06d}.eml"
        final = self.directory / name
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(envelope_headers.encode("ascii", "replace") + content)
        os.replace(partial, final)
        log.info("stored %s for %d recipient(s)", name, len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def _check_port_free(host: str, port: int) -> None:
    """Fail at once on a taken port (aiosmtpd only notices after its 5 second start timeout)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds
        probe.bind((host, port))


class ControlledSmtpServer:
    """An aiosmtpd server on a thread of its own: a subclass's start() builds and starts the
    controller; stop() and the context manager are shared (the tests' recording SMTP server in
    devstack is the other subclass)."""

    _controller: Controller | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MailSink(ControlledSmtpServer):
    """The sink as an object: start(), stop(), or use it as a context manager."""

    def __init__(self, directory: Path | str, *, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._controller = None

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        _check_port_free(self.host, self.port)
        self._controller = Controller(
            _SaveToFolder(self.directory), hostname=self.host, port=self.port
        )
        self._controller.start()
        return self


@dataclass(frozen=True)
class StoredMail:
    path: Path
    received_at: datetime  # the file's modification time
    envelope_to: tuple[str, ...]
    subject: str
    sender: str
    message: EmailMessage

    def body(self, subtype: str = "plain") -> str:
        """The plain or html part as a reader sees it (LF line ends)."""
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content()).replace("\r\n", "\n")


def read_mail(path: Path) -> StoredMail:
    # With the default policy the parser builds EmailMessage objects.
    parsed = cast(
        EmailMessage, email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    )
    return StoredMail(
        path=path,
        received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        envelope_to=tuple(str(v) for v in parsed.get_all("X-Envelope-To", [])),
        subject=str(parsed.get("Subject", "")),
        sender=str(parsed.get("From", "")),
        message=parsed,
    )


def read_mailbox(directory: Path | str, *, limit: int | None = None) -> list[StoredMail]:
    """The stored messages, newest first."""
    files = sorted(Path(directory).glob("*.eml"), reverse=True)
    if limit is not None:
        files = files[:limit]
    return [read_mail(path) for path in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alerts.mailsink",
        description="Local SMTP server that stores every message as a .eml file.",
    )
    parser.add_argument("--dir", default="var/mail", help="folder for the .eml files")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=1025, help="listen port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sink = MailSink(args.dir, host=args.host, port=args.port)
    try:
        sink.start()
    except Exception as exc:  # e.g. the port is taken
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    log.info("mail sink listening on %s:%s, writing to %s", args.host, args.port, sink.directory)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sink.stop()
    log.info("mail sink stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
