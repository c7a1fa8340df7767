"""Real receivers for the alerts' tests and benchmark: an SMTP server (aiosmtpd) and an HTTP
server that takes Apprise's json:// posts. Both keep what they received, and the HTTP one
can be down for a while (its port closed, then open again)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.helpers import Process, Stack, free_port


@dataclass
class Mail:
    to: list[str]
    message: Message
    at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(payload)


class SMTPServer:
    """aiosmtpd on a free port of 127.0.0.1; `mails` in the order received."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = Mail(list(envelope.rcpt_tos), message_from_bytes(envelope.content), time.time())
        with self._lock:
            self.mails.append(mail)
        return "250 OK"

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    raw: bytes = b""


@dataclass
class HTTPReceiver:
    """Takes POSTs (Apprise's json:// payload: title, message) and answers 200."""

    port: int = field(default_factory=free_port)
    posts: list[Post] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> HTTPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                post = Post(self.path, dict(self.headers.items()), body, time.time(), raw)
                with receiver._lock:
                    receiver.posts.append(post)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[Post]:
        with self._lock:
            return list(self.posts)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


# --- fixtures (tests/conftest.py makes them every test's) ----------------------------------


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    http = HTTPReceiver().up()
    try:
        yield http
    finally:
        http.down()


class AlertStack:
    """The redis-mode stack (Daphne, a listen_notify) and the alerts' workers."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.workers: list[Process] = []

    @property
    def public_url(self) -> str:
        return self.stack.http

    def start_worker(self, **more_env: str) -> Process:
        log = self.stack.logs / f"notify-{len(self.workers)}.log"
        # The messages' links lead to this stack's server.
        env = {**self.stack.env, "REALTIME_PUBLIC_URL": self.public_url, **more_env}
        worker = Process([sys.executable, "manage.py", "notify"], env, log).start()
        worker.wait_for_log("alerts worker started")
        self.workers.append(worker)
        return worker


@pytest.fixture
def alerts(
    database_url: str, redis_url: str, tmp_path: Path, smtp: SMTPServer
) -> Iterator[AlertStack]:
    stack = Stack.start(
        "redis",
        database_url,
        redis_url,
        tmp_path,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        DEFAULT_FROM_EMAIL="alerts@plant.test",
    )
    running = AlertStack(stack)
    try:
        running.start_worker()
        yield running
    finally:
        for worker in running.workers:
            worker.kill()
        stack.stop()


@pytest.fixture
def plant() -> dict[str, Any]:
    """Sites North (cameras 1-5) and South (6-10), and two contacts."""
    from realtime.models import Contact, Site

    return {
        "north": Site.objects.create(name="North", cameras=[1, 2, 3, 4, 5]),
        "south": Site.objects.create(name="South", cameras=[6, 7, 8, 9, 10]),
        "safety": Contact.objects.create(name="safety-team", url="mailto:safety@plant.test"),
    }
