"""FakeTwilio against Twilio's own OpenAPI description, through Stoplight Prism.

Prism in proxy mode (``prism proxy --errors SPEC UPSTREAM``) sits between the real ``twilio``
client and the fake: it checks each request against the spec before forwarding it, and each
answer of the fake against the spec before passing it back. How Prism 5 reports what it finds:

* A request that breaks the spec is not forwarded. Prism answers itself: ``422``
  ``application/problem+json`` of type ``https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY``
  with a ``validation`` list, or ``401`` (``#UNAUTHORIZED``) when Basic credentials are missing.
* Every problem with the upstream answer is listed in the ``sl-violations`` response header, a
  JSON list of ``{location, severity, code, message}``. With ``--errors``, one of severity
  ``Error`` replaces the answer with a ``500`` ``application/problem+json`` of type
  ``https://stoplight.io/prism/errors#VIOLATIONS`` listing them again in ``validation``.
* The spec documents only the ``201`` of Messages create, so an error answer always carries one
  ``Warning`` ("Unable to match the returned status code ...") and passes through unchanged;
  Twilio's error bodies are checked against their documented shape instead.

Prism ignores formats it does not know (``phone-number``, ``date-time-rfc-2822``, ``currency``,
``uri-map``); test_success_body_matches_the_schema checks every property, formats included.

Needs the spec in ``../shared/specs/twilio/`` beside the project and Prism from
``npm ci --prefix tests/contract``; skipped otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from tests.standins.twilio import FakeTwilio

pytestmark = [
    pytest.mark.contract,
    # The twilio package's async client still passes aiohttp a BasicAuth; aiohttp 3.14 warns.
    pytest.mark.filterwarnings(
        "ignore:BasicAuth is deprecated:DeprecationWarning",
        "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "specs" / "twilio" / "twilio_api_v2010.json"
PRISM = Path(__file__).resolve().parent / "node_modules" / ".bin" / "prism"
PRISM_READY_TIMEOUT = 60.0
MESSAGE_SCHEMA = "api.v2010.account.message"
UNMATCHED_STATUS = "Unable to match the returned status code with those defined in the document: 201"

TO = "+8613800138000"
SENDER = "+15005550006"
SERVICE = "MG" + "0123456789abcdef" * 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def spec() -> Path:
    if not SPEC.is_file():
        pytest.skip(
            f"Twilio's OpenAPI description is not at {SPEC}: these tests need ../shared/specs/twilio/ "
            "beside the project"
        )
    return SPEC


@pytest.fixture(scope="session")
def prism_bin() -> Path:
    if shutil.which("node") is None or not PRISM.exists():
        pytest.skip("Stoplight Prism is not installed: run `npm ci --prefix tests/contract`")
    return PRISM


class Prism:
    """One ``prism proxy --errors`` process in front of `upstream`."""

    def __init__(self, prism_bin: Path, spec: Path, upstream: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [str(prism_bin), "proxy", "--errors", str(spec), upstream]
        command += ["--port", str(self.port), "--host", "127.0.0.1"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.started_in = self._wait_listening()

    def _wait_listening(self) -> float:
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prism exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return time.monotonic() - started
            except OSError:
                pass
            if time.monotonic() - started > PRISM_READY_TIMEOUT:
                self.stop()
                raise RuntimeError(
                    f"prism did not listen within {PRISM_READY_TIMEOUT:.0f} s:\n{self.log.read_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture(scope="session")
def prism(
    prism_bin: Path, spec: Path, fake: FakeTwilio, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prism]:
    proxy = Prism(prism_bin, spec, fake.url, tmp_path_factory.mktemp("prism") / "prism.log")
    yield proxy
    proxy.stop()


@pytest.fixture
def proxied(fake: FakeTwilio, prism: Prism) -> FakeTwilio:
    """The session's fake, reset, reached through Prism."""
    fake.reset()
    return fake


class RecordingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """The package's HTTP client, keeping every response (the exceptions drop the headers)."""

    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.responses: list[Response] = []

    def request(self, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().request(*args, **kwargs)
        self.responses.append(response)
        return response


def client_via(
    prism: Prism, fake: FakeTwilio, token: str | None = None
) -> tuple[Client, RecordingHttpClient]:
    http = RecordingHttpClient()
    client = Client(fake.account_sid, token or fake.auth_token, http_client=http)
    client.api.base_url = prism.url
    return client, http


def violations(headers: Any) -> list[dict[str, Any]]:
    """Prism's findings about one exchange (empty when it found none)."""
    lowered = {str(name).lower(): value for name, value in dict(headers).items()}
    raw = lowered.get("sl-violations")
    return [] if raw is None else list(json.loads(raw))


def only_unmatched_status(found: list[dict[str, Any]]) -> bool:
    """True when Prism's only finding is that the spec documents no such (error) status."""
    return found == [{"location": ["response"], "severity": "Warning", "message": UNMATCHED_STATUS}]


def raw_post(url: str, form: dict[str, str], login: str, password: str) -> tuple[int, Any, Any]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
        headers={"Authorization": "Basic " + token},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


# -- through Prism -----------------------------------------------------------------------------


def test_success_has_no_violations(prism: Prism, proxied: FakeTwilio) -> None:
    client, http = client_via(prism, proxied)
    answer = client.messages.create_with_http_info(
        to=TO,
        from_=SENDER,
        body="您好,李伟",
        status_callback="https://herald.example/v1/providers/twilio/status",
    )
    assert answer.status_code == 201
    assert violations(answer.headers) == []
    assert answer.data.status == "queued"
    assert [record["sid"] for record in proxied.accepted] == [answer.data.sid]
    assert len(http.responses) == 1


def test_messaging_service_success_async_has_no_violations(prism: Prism, proxied: FakeTwilio) -> None:
    async def create() -> Any:
        http = AsyncTwilioHttpClient()
        client = Client(proxied.account_sid, proxied.auth_token, http_client=http)
        client.api.base_url = prism.url
        try:
            return await client.messages.create_with_http_info_async(
                to=TO, messaging_service_sid=SERVICE, body="x" * 200
            )
        finally:
            await http.close()

    answer = asyncio.run(create())
    assert answer.status_code == 201
    assert violations(answer.headers) == []
    assert answer.data.status == "accepted"
    assert len(proxied.accepted) == 1


def test_twilio_error_passes_through_unchanged(prism: Prism, proxied: FakeTwilio) -> None:
    client, http = client_via(prism, proxied)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+15005550001", from_=SENDER, body="hello")
    assert (caught.value.status, caught.value.code) == (400, 21211)
    [response] = http.responses
    assert only_unmatched_status(violations(response.headers))
    assert json.loads(response.text) == {
        "code": 21211,
        "message": "The 'To' number +15005550001 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    assert proxied.requests == 1  # Prism found the request valid and forwarded it


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("wrong_token", 401, 20003),
        ("stop", 400, 21610),
        ("rate_limited", 429, 20429),
        ("unavailable", 503, 20503),
        ("server_error", 500, 20500),
    ],
)
def test_other_errors_pass_through(
    prism: Prism, proxied: FakeTwilio, setup: str, status: int, code: int
) -> None:
    token = "0" * 32 if setup == "wrong_token" else None
    if setup == "stop":
        proxied.block(TO)
    elif setup == "rate_limited":
        proxied.fail_next(1, 429, retry_after=3)
    elif setup == "unavailable":
        proxied.fail_next(1, 503)
    elif setup == "server_error":
        proxied.fail_next(1, 500)
    client, http = client_via(prism, proxied, token)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=SENDER, body="hello")
    assert (caught.value.status, caught.value.code) == (status, code)
    [response] = http.responses
    assert only_unmatched_status(violations(response.headers))
    body = json.loads(response.text)
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    if setup == "rate_limited":
        assert response.headers["Retry-After"] == "3"
    assert proxied.accepted == []


# -- Prism does catch what breaks the spec (so "no violations" above means something) ----------


def test_prism_refuses_a_request_that_breaks_the_spec(prism: Prism, proxied: FakeTwilio) -> None:
    status, headers, body = raw_post(
        proxied.messages_url.replace(proxied.url, prism.url),
        {"To": TO, "MessagingServiceSid": "MG123", "Body": "hello"},
        proxied.account_sid,
        proxied.auth_token,
    )
    assert status == 422
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["type"] == "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY"
    assert {tuple(item["location"]) for item in body["validation"]} == {("body", "MessagingServiceSid")}
    assert proxied.requests == 0  # not forwarded


class _BrokenTwilio(BaseHTTPRequestHandler):
    """Answers every POST with a 201 whose body breaks the Message schema."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"sid": "XX123", "status": "sent-ish", "num_segments": 1}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_prism_flags_an_answer_that_breaks_the_spec(prism_bin: Path, spec: Path, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = Prism(prism_bin, spec, f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "prism.log")
    try:
        account = "AC" + "0" * 32
        status, headers, body = raw_post(
            f"{proxy.url}/2010-04-01/Accounts/{account}/Messages.json",
            {"To": TO, "From": SENDER, "Body": "hello"},
            account,
            "secret",
        )
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()
    assert status == 500
    assert body["type"] == "https://stoplight.io/prism/errors#VIOLATIONS"
    found = violations(headers)
    assert [item["location"] for item in body["validation"]] == [item["location"] for item in found]
    assert {item["severity"] for item in found} == {"Error"}
    flagged = {".".join(item["location"]) for item in found}
    assert {"response.body.sid", "response.body.status", "response.body.num_segments"} <= flagged


# -- the success body, property by property -----------------------------------------------------

_RFC2822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def _schema_problems(value: Any, schema: dict[str, Any], components: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null but not nullable"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "object": dict,
        "number": (int, float),
        "boolean": bool,
    }
    kind = schema.get("type")
    if kind in kinds and (
        not isinstance(value, kinds[kind]) or (kind == "integer" and isinstance(value, bool))
    ):
        return [f"{where}: {value!r} is not {kind}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{where}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{where}: longer than {schema['maxLength']}")
    form = schema.get("format")
    if form == "date-time-rfc-2822" and not (_RFC2822.match(value) and parsedate_to_datetime(value)):
        problems.append(f"{where}: {value!r} is not an RFC 2822 date")
    if form == "phone-number" and not _E164.match(value):
        problems.append(f"{where}: {value!r} is not an E.164 number")
    if form == "currency" and not re.fullmatch(r"[A-Z]{3}", value):
        problems.append(f"{where}: {value!r} is not an ISO 4217 code")
    if form == "uri-map" and not all(
        isinstance(v, str) and v.startswith("/2010-04-01/") for v in value.values()
    ):
        problems.append(f"{where}: {value!r} is not a map of API paths")
    return problems


@pytest.mark.parametrize(
    "form",
    [
        {"To": TO, "From": SENDER, "Body": "您好"},
        {
            "To": TO,
            "MessagingServiceSid": SERVICE,
            "Body": "hello",
            "StatusCallback": "https://herald.example/s",
        },
        {"To": TO, "From": SENDER, "MessagingServiceSid": SERVICE, "Body": "x" * 500},
        {"To": TO, "From": SENDER, "MediaUrl": "https://herald.example/a.png"},
    ],
    ids=["from", "service", "both", "media"],
)
def test_success_body_matches_the_schema(spec: Path, fake: FakeTwilio, form: dict[str, str]) -> None:
    document = json.loads(spec.read_text(encoding="utf-8"))
    components = document["components"]["schemas"]
    schema = components[MESSAGE_SCHEMA]
    status, _, body = raw_post(fake.messages_url, form, fake.account_sid, fake.auth_token)
    assert status == 201
    assert set(body) == set(schema["properties"])  # every property Twilio documents, no other
    problems = [
        problem
        for name, property_schema in schema["properties"].items()
        for problem in _schema_problems(body[name], property_schema, components, name)
    ]
    assert problems == []
