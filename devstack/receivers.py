"""Real receivers for delivery tests: an SMTP server, and HTTP stand-ins for a Slack incoming
webhook, a receiver built for Alertmanager's webhook, and PagerDuty's Events API v2.

All listen on 127.0.0.1 on a free port, run in background threads, record what they receive
with the arrival time, and can be told how to answer:

    with SmtpServer() as smtp:                       # aiosmtpd, accepts everything
        smtp.reject_recipient("gone@example.com")    # RCPT answered 550
        smtp.script_data_replies("451 4.3.0 Try again later")  # next DATA answered 451, then 250
        ... send to smtp.host, smtp.port ...
        [mail] = smtp.wait_for_messages(1)
        mail.subject, mail.text, mail.html, mail.rcpt_tos, mail.login, mail.tls

    with SmtpServer(credentials={"alerts": "s3cret"}, tls=tls_files, require_starttls=True):
        ...                                          # STARTTLS first, then AUTH, then MAIL

    with SlackReceiver(Reply(429, retry_after="2"), Reply(500)) as slack:
        ... post to slack.url ...                    # 429, then 500, then 200 "ok" from then on
        posts = slack.wait_for_posts(3)              # bodies (post.json), status answered, times

    with WebhookReceiver() as hook:                  # the same, answering 200 with no body
        ... post to hook.url ...

    with PagerDutyReceiver() as pagerduty:           # checks every event as PagerDuty does
        ... post events to pagerduty.url ...         # 202 or 400 "invalid event"
        pagerduty.alert(routing_key, dedup_key).status  # triggered, acknowledged, resolved

`SilentTcpServer` accepts connections and never says a word (for timeouts); `closed_port()`
gives a port nothing listens on (for refused connections). `make_tls_files()` writes a
self-signed certificate for 127.0.0.1 with the openssl command line tool.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.delivery.mailsink import ControlledSmtpServer
from devstack.pagerduty_events import AlertBook, PagerDutyAlert
from devstack.servers import free_port, wait_for

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate and its key, valid for 127.0.0.1 and localhost."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and verifies the host name)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return TlsFiles(cert=cert, key=key)


# ---------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str | None  # AUTH user name; None when the client did not log in
    tls: bool  # the session was upgraded with STARTTLS
    received_at: float  # time.monotonic() when DATA completed
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per SMTP connection

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, email.message_from_bytes(self.data, policy=email.policy.default))

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str) -> str | None:
        """The text of the plain or html part, with the wire's CRLF line ends made LF."""
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            return None
        return str(cast(EmailMessage, part).get_content()).replace("\r\n", "\n")

    @property
    def text(self) -> str | None:
        return self.body("plain")

    @property
    def html(self) -> str | None:
        return self.body("html")


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.server.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.server.rejected_recipients.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.server.data_delay_seconds:  # a slow relay; other connections are served meanwhile
            await asyncio.sleep(self.server.data_delay_seconds)
        return self.server._received(session, envelope)


class SmtpServer(ControlledSmtpServer):
    """A real aiosmtpd server collecting the messages it accepts.

    credentials: user name -> password; when given, MAIL is refused (530) until the client has
    logged in. tls + require_starttls: the client must upgrade with STARTTLS before anything
    else, and AUTH is only offered after it. Without tls, AUTH is offered in clear text (tests
    only). data_delay_seconds: how long each DATA takes to be answered (a slow relay).
    """

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        require_starttls: bool = False,
        data_delay_seconds: float = 0.0,
    ) -> None:
        self.data_delay_seconds = data_delay_seconds
        self.host = HOST
        self.port = free_port()
        self.credentials = dict(credentials or {})
        self.tls = tls
        self.require_starttls = require_starttls
        self.rejected_recipients: dict[str, str] = {}
        self.failed_logins: list[str] = []
        self._data_replies: deque[str] = deque()
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = None

    # -- scripting
    def reject_recipient(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        """Answer RCPT TO:<address> with `reply` (a 4xx reply makes it a temporary refusal)."""
        self.rejected_recipients[address.lower()] = reply

    def script_data_replies(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (e.g. "451 ..."), then accept."""
        with self._lock:
            self._data_replies.extend(replies)

    # -- what arrived
    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def wait_for_messages(self, count: int, *, timeout: float = 5.0) -> list[ReceivedMail]:
        wait_for(lambda: len(self.messages) >= count, timeout=timeout, what=f"{count} message(s)")
        return self.messages

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def environ(self) -> dict[str, str]:
        """SMTP_* variables pointing a process at this server."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port)}

    # -- lifecycle
    def start(self) -> Self:
        tls_context = self.tls.server_context() if self.tls else None
        self._controller = Controller(
            _SmtpHandler(self),
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate if self.credentials else None,
            auth_required=False,  # enforced at MAIL, so aiosmtpd does not warn about clear text
            auth_require_tls=tls_context is not None,
            tls_context=tls_context,
            require_starttls=self.require_starttls and tls_context is not None,
        )
        self._controller.start()
        return self

    # -- internals
    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.credentials.get(login) == password:
                return AuthResult(success=True, auth_data=login)
            self.failed_logins.append(login)
        return AuthResult(success=False, handled=False)

    def _received(self, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._data_replies:
                return self._data_replies.popleft()
            content = envelope.original_content or envelope.content
            self._messages.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=content if isinstance(content, bytes) else content.encode("utf-8"),
                    login=session.auth_data if session.authenticated else None,
                    tls=session.ssl is not None,
                    received_at=time.monotonic(),
                    peer=tuple(session.peer[:2]) if session.peer else ("", 0),
                )
            )
        return "250 Message accepted"


class SilentTcpServer:
    """Completes TCP connections and never answers: an SMTP client waiting for the greeting
    times out."""

    def __init__(self) -> None:
        self.host = HOST
        self._socket = socket.socket()
        self._socket.bind((HOST, 0))
        self._socket.listen(16)  # never accept(): the kernel completes the handshake anyway
        self.port = int(self._socket.getsockname()[1])

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> SilentTcpServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_HELD: list[socket.socket] = []


@atexit.register
def _release_held() -> None:
    for held in _HELD:
        held.close()


def closed_port() -> int:
    """A port nothing listens on (connections are refused), and that stays so: the port is
    bound without listening and held for the life of the process. A port merely found free
    could be handed to another test's receiver a moment later, which would then answer
    connections meant to be refused and eat that receiver's scripted replies."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind((HOST, 0))
    _HELD.append(held)
    return int(held.getsockname()[1])


# ---------------------------------------------------------------------------- HTTP receivers


@dataclass(frozen=True)
class Reply:
    """How an HTTP receiver answers one post."""

    status: int = 200
    body: str = "ok"
    retry_after: str | None = None  # Retry-After header value, e.g. "2"
    delay: float = 0.0  # seconds to wait before answering (to make a client time out)
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class HttpPost:
    """One post an HTTP receiver got, and what it answered."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    received_at: float  # time.monotonic() on arrival
    answered: int  # the HTTP status it answered with
    answer: str = ""  # the body it answered with

    @property
    def json(self) -> Any:
        return json.loads(self.body)


SlackPost = HttpPost  # the name the Slack tests know


class HttpReceiver:
    """A threaded HTTP server on a free port recording every post.

    Answers come from a queue of scripted Replies; once it is empty, `respond(post)` decides
    (by default: `default`). Subclasses speak one service's protocol by overriding `respond`.
    """

    webhook_path = "/"

    def __init__(self, *replies: Reply, default: Reply = Reply()) -> None:
        self.default = default
        self._replies: deque[Reply] = deque(replies)
        self._posts: list[HttpPost] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The URL to configure (for Slack: SLACK_WEBHOOK_URL)."""
        return f"http://{HOST}:{self.port}{self.webhook_path}"

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next posts."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def posts(self) -> list[HttpPost]:
        with self._lock:
            return list(self._posts)

    def wait_for_posts(self, count: int, *, timeout: float = 5.0) -> list[HttpPost]:
        wait_for(lambda: len(self.posts) >= count, timeout=timeout,
                 what=f"{count} post(s) to {type(self).__name__}")
        return self.posts

    def clear(self) -> None:
        with self._lock:
            self._posts.clear()

    def respond(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        """The answer to a post no scripted reply was left for (`headers`: lower-case names)."""
        return self.default

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._next_reply(self.path, body, headers)
                receiver._record(
                    HttpPost(
                        path=self.path,
                        headers=headers,
                        body=body,
                        received_at=time.monotonic(),
                        answered=reply.status,
                        answer=reply.body,
                    )
                )
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    if reply.retry_after is not None:
                        self.send_header("Retry-After", reply.retry_after)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return self.respond(path, body, headers)

    def _record(self, post: HttpPost) -> None:
        with self._lock:
            self._posts.append(post)


class SlackReceiver(HttpReceiver):
    """Answers like a Slack incoming webhook: scripted Replies, then 200 "ok"."""

    webhook_path = "/services/T0000TEST/B0000TEST/testsecrettoken"


class WebhookReceiver(HttpReceiver):
    """A receiver built for Alertmanager's webhook (a Teams bridge, a ticket system): scripted
    Replies, then 200 with an empty body. `post.headers["authorization"]` shows the credential
    it was sent."""

    webhook_path = "/alertmanager/webhook"

    def __init__(self, *replies: Reply, default: Reply = Reply(200, body="")) -> None:
        super().__init__(*replies, default=default)


class PagerDutyReceiver(HttpReceiver):
    """A stand-in for PagerDuty's Events API v2 (`POST /v2/enqueue`).

    It checks each event as PagerDuty documents it (`devstack/pagerduty_events.py`) and answers
    202 `{"status": "success", "message": "Event processed", "dedup_key": ...}` or 400
    `{"status": "invalid event", "message": ..., "errors": [...]}`, and keeps PagerDuty's alert
    lifecycle per routing key and dedup key: a trigger opens an alert (or adds to the open one),
    acknowledge and resolve act on the open one and are dropped when there is none.
    Scripted Replies (429, 500, a delay) come first and are not ingested.

        with PagerDutyReceiver() as pagerduty:
            ... post events to pagerduty.url ...
            pagerduty.alert(routing_key, dedup_key).status   # triggered, acknowledged, resolved
            pagerduty.events                                   # every accepted event, in order
    """

    webhook_path = "/v2/enqueue"

    def __init__(self, *replies: Reply) -> None:
        super().__init__(*replies)
        self.book = AlertBook()

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.book.events

    def alert(self, routing_key: str, dedup_key: str) -> PagerDutyAlert | None:
        """The latest alert PagerDuty would hold for this key (None if none was triggered)."""
        return self.book.latest(routing_key, dedup_key)

    def wait_for_events(self, count: int, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.events) >= count, timeout=timeout,
                 what=f"{count} accepted PagerDuty event(s)")
        return self.events

    def respond(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        if path.split("?", 1)[0] != self.webhook_path:
            return _json_reply(404, {"status": "Not found", "message": "Unknown endpoint"})
        status, answer = self.book.ingest(body)
        return _json_reply(status, answer)


class SlackApiReceiver(HttpReceiver):
    """A stand-in for Slack's Web API `chat.postMessage` with a bot token.

    Like Slack it answers HTTP 200 with `{"ok": true, "channel", "ts", "message"}`, or HTTP 200
    with `{"ok": false, "error": ...}`: `not_authed` without a token, `invalid_auth` for another
    token, `channel_not_found` for another channel, `no_text` without text or blocks, and
    `thread_not_found` for a `thread_ts` it never gave out. Scripted Replies (429, 500) first.

        with SlackApiReceiver(token="xoxb-test", channel="C0INCIDENT") as slack:
            ... post to slack.api_url + "/chat.postMessage" ...
            slack.messages   # the accepted ones: channel, ts, thread_ts, text, blocks
    """

    webhook_path = "/api"

    def __init__(self, *replies: Reply, token: str = "xoxb-0000-test-token",
                 channel: str = "C0INCIDENTS") -> None:
        super().__init__(*replies)
        self.token, self.channel = token, channel
        self.messages: list[dict[str, Any]] = []
        self._clock = 1_765_000_000

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    def respond(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        if path.split("?", 1)[0] != "/api/chat.postMessage":
            return _json_reply(404, {"ok": False, "error": "unknown_method"})
        auth = (headers or {}).get("authorization", "")
        if not auth.startswith("Bearer "):
            return _json_reply(200, {"ok": False, "error": "not_authed"})
        if auth[len("Bearer "):] != self.token:
            return _json_reply(200, {"ok": False, "error": "invalid_auth"})
        try:
            message = json.loads(body)
        except ValueError:
            return _json_reply(200, {"ok": False, "error": "invalid_json"})
        if message.get("channel") != self.channel:
            return _json_reply(200, {"ok": False, "error": "channel_not_found"})
        if not message.get("text") and not message.get("blocks"):
            return _json_reply(200, {"ok": False, "error": "no_text"})
        thread = message.get("thread_ts")
        with self._lock:
            if thread is not None and thread not in {m["ts"] for m in self.messages}:
                return _json_reply(200, {"ok": False, "error": "thread_not_found"})
            self._clock += 1
            ts = f"{self._clock}.000100"
            self.messages.append({**message, "ts": ts})
        return _json_reply(200, {"ok": True, "channel": self.channel, "ts": ts,
                                 "message": {"type": "message", "text": message.get("text", ""),
                                             "ts": ts, "thread_ts": thread}})


def _json_reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, body=json.dumps(body), content_type="application/json")
