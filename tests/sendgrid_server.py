"""A loopback server that speaks SendGrid's v3 mail-send API, for tests and benchmarks.

It checks what the real API checks that matters here (the key, at most 1,000
personalizations, no address twice, string custom_args, a From and content) and answers
202 with an X-Message-Id, or the API's error bodies. Tests script extra answers
(429, 500, 413, ...) and may act on the n-th request (kill the sender mid-request).
Like the real API it takes a while to answer (`latency` seconds per request), so several
requests are in flight at once. Run alone for benchmarks:
`python -m tests.sendgrid_server [PORT] [--latency SECONDS]`; it then keeps only the addresses
it accepted, and answers "count" on standard input.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "SG.test-key"


@dataclass
class Scripted:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MailAPI:
    port: int = 0
    # answers to give before behaving normally, one per request
    script: list[Scripted] = field(default_factory=list)
    # answers to given requests by number (1, 2, ...), whatever else is in flight
    answers: dict[int, Scripted] = field(default_factory=dict)
    # seconds each request takes to be answered, as a real API's few hundred milliseconds
    latency: float = 0.0
    bad_addresses: set[str] = field(default_factory=set)
    max_personalizations: int = 1000  # lower it to make the server answer 413
    accepted: list[dict] = field(default_factory=list)  # one entry per accepted personalization
    requests: int = 0
    payloads: list[dict] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # each accepted request's body, as it came
    numbered: dict[int, dict] = field(default_factory=dict)  # each accepted request's payload by number
    keep_payloads: bool = True  # False (benchmarks): only the accepted addresses are kept
    addresses: list[str] = field(default_factory=list)
    # called with the request number before answering; returning False drops the request unanswered
    on_request: Callable[[int], bool] | None = None
    # called with the request number once it is accepted; returning False drops the answer
    # (the mail goes, the client never hears it)
    on_accepted: Callable[[int], bool] | None = None
    # the "processed" event of every accepted message, as the Event Webhook would POST it
    events: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def recipients(self) -> list[str]:
        if not self.keep_payloads:
            return self.addresses
        return [p["to"][0]["email"] for p in self.accepted]


def error(message: str, field_name: str | None = None) -> dict:
    return {"errors": [{"message": message, "field": field_name, "help": None}]}


def check(payload: dict, api: MailAPI) -> tuple[int, dict | None]:
    personalizations = payload.get("personalizations") or []
    if not personalizations:
        return 400, error("The personalizations field is required.", "personalizations")
    if len(personalizations) > 1000:
        return 400, error("The personalizations field must have at most 1000 items.", "personalizations")
    if len(personalizations) > api.max_personalizations:
        return 413, error("Payload too large.")
    if not payload.get("from", {}).get("email") or not payload.get("content"):
        return 400, error("The from and content fields are required.")
    seen = set()
    for index, item in enumerate(personalizations):
        address = item["to"][0]["email"].lower()
        if address in seen:
            return 400, error(
                "Each email address in the personalization block should be unique.",
                f"personalizations.{index}.to",
            )
        seen.add(address)
        if address in api.bad_addresses:
            return 400, error("Does not contain a valid address.", f"personalizations.{index}.to.0.email")
        if any(not isinstance(v, str) for v in item.get("custom_args", {}).values()):
            return 400, error("custom_args values must be strings.", f"personalizations.{index}.custom_args")
    return 202, None


def processed_events(payload: dict, message_id: str) -> list[dict]:
    """What SendGrid's Event Webhook reports of an accepted request: a `processed` event per
    message, its custom_args (the request's and the personalization's) at the top level."""
    now = int(time.time())
    return [
        {
            "email": item["to"][0]["email"],
            "timestamp": now,
            "event": "processed",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": f"{message_id}.filter{index:04d}",
            **payload.get("custom_args", {}),
            **item.get("custom_args", {}),
        }
        for index, item in enumerate(payload["personalizations"])
    ]


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # many senders' requests at once; the default 5 drops connections


def start(api: MailAPI | None = None, port: int = 0) -> tuple[MailAPI, ThreadingHTTPServer]:
    api = api or MailAPI()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            with api.lock:
                api.requests += 1
                number = api.requests
            if api.latency:
                time.sleep(api.latency)
            if api.on_request is not None and api.on_request(number) is False:
                self.close_connection = True
                return
            if self.path != "/v3/mail/send":
                return self.answer(404, error("Not found"))
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self.answer(
                    401, error("The provided authorization grant is invalid, expired, or revoked")
                )
            with api.lock:
                scripted = api.answers.pop(number, None)
                if scripted is None and api.script:
                    scripted = api.script.pop(0)
            if scripted is not None:
                return self.answer(scripted.status, scripted.body, scripted.headers)
            try:
                payload = json.loads(raw)
            except ValueError:
                return self.answer(400, error("Bad Request"))
            status, body = check(payload, api)
            if status == 202:
                message_id = uuid.uuid4().hex[:22]
                with api.lock:
                    if not api.keep_payloads:
                        api.addresses.extend(p["to"][0]["email"] for p in payload["personalizations"])
                    else:
                        api.accepted.extend(payload["personalizations"])
                        api.payloads.append(payload)
                        api.numbered[number] = payload
                        api.bodies.append(raw)
                        api.events.extend(processed_events(payload, message_id))
                if api.on_accepted is not None and api.on_accepted(number) is False:
                    self.close_connection = True
                    return
                return self.answer(202, None, {"X-Message-Id": message_id})
            return self.answer(status, body)

        def answer(self, status: int, body: dict | None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    api.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # stops in 0.05 s
    return api, server


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description="A loopback SendGrid v3 mail-send API.")
    arguments.add_argument("port", nargs="?", type=int, default=0)
    arguments.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    given = arguments.parse_args()
    api, server = start(MailAPI(keep_payloads=False, latency=given.latency), given.port)
    print(api.port, flush=True)
    try:
        # "count": personalizations accepted, distinct addresses, CPU seconds, peak MB
        for line in sys.stdin:
            if line.strip() == "count":
                import resource

                cpu = resource.getrusage(resource.RUSAGE_SELF)
                print(
                    len(api.recipients()),
                    len(set(api.recipients())),
                    f"{cpu.ru_utime + cpu.ru_stime:.1f}",
                    f"{cpu.ru_maxrss / 1024:.0f}",
                    flush=True,
                )
    finally:
        server.shutdown()
