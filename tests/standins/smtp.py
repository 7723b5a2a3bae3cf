"""A real SMTP server for tests: aiosmtpd in a background thread, with TLS, AUTH and faults.

`FakeSMTP` listens on 127.0.0.1 and records every accepted message. TLS modes:

* ``"none"``: plain SMTP; AUTH (if configured) is allowed in the clear.
* ``"starttls"``: plain port that requires STARTTLS before AUTH/MAIL (530 otherwise).
* ``"tls"``: implicit TLS from the first byte (SMTPS, as on port 465).

The certificate is a fresh self-signed one for ``localhost`` / ``127.0.0.1`` / ``::1``;
clients trust it through `cert_path` (``ssl.create_default_context(cafile=cert_path)``).

With `username` set, AUTH PLAIN/LOGIN is offered and required before MAIL (530 otherwise);
wrong credentials get ``535 5.7.8`` at once (never a hang).

Magic recipients (by local part, case-insensitive, ``+tag`` ignored):

* ``reject@...``: 550 at RCPT (permanent; other recipients still accepted)
* ``tempfail@...``: 451 at RCPT
* ``busy@...``: 421 at RCPT, then the server closes the connection
* ``tempfail-data@...``: accepted at RCPT, 451 at DATA (nothing recorded)

`fail_next(n, code, message, at=...)` queues on-demand replies for MAIL, RCPT or DATA
(checked before the magic recipients); a queued 421 closes the connection after replying.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.standins.base import LocalServer

TLSMode = Literal["none", "starttls", "tls"]
Stage = Literal["mail", "rcpt", "data"]

_REJECT = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
_TEMPFAIL = "451 4.3.0 <{address}>: Temporary lookup failure, try again later"
_BUSY = "421 4.3.2 Service not available, closing transmission channel"
_TEMPFAIL_DATA = "451 4.3.0 Error: queue file write error, try again later"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_self_signed_certificate(
    directory: Path, hostnames: tuple[str, ...] = ("localhost",)
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (P-256) valid for `hostnames`, 127.0.0.1 and ::1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.UTC)
    san: list[x509.GeneralName] = [x509.DNSName(host) for host in hostnames]
    san += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _local_part(address: str) -> str:
    local = address.rpartition("@")[0] if "@" in address else address
    return local.split("+", 1)[0].lower()


class _TrackedSMTP(SMTP):
    """aiosmtpd's SMTP protocol, reporting its connections to the owning FakeSMTP."""

    def __init__(
        self, handler: Any, *, owner: FakeSMTP, counted: bool, auth_in_clear: bool, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        if auth_in_clear:
            # Set after construction: passing auth_require_tls=False with auth_required=True makes
            # aiosmtpd warn on every connection. Implicit TLS needs it too (aiosmtpd only counts
            # STARTTLS as encryption).
            self._auth_require_tls = False
        self._owner = owner
        self._counted = counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # a second call is the STARTTLS upgrade
        super().connection_made(transport)
        if first:
            self._owner._opened(self, self._counted)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._closed(self)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, owner: FakeSMTP, handler: Any, *, auth_in_clear: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        self._auth_in_clear = auth_in_clear
        self._made = 0

    def factory(self) -> SMTP:
        # The first connection is the Controller's own start-up probe: not counted.
        self._made += 1
        return _TrackedSMTP(
            self.handler,
            owner=self._owner,
            counted=self._made > 1,
            auth_in_clear=self._auth_in_clear,
            **self.SMTP_kwargs,
        )


class _Handler:
    def __init__(self, owner: FakeSMTP) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        fault = self._owner._take_fault("mail")
        if fault is not None:
            return _reply(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        fault = self._owner._take_fault("rcpt")
        if fault is not None:
            return _reply(server, fault)
        local = _local_part(address)
        if local == "reject":
            return _REJECT.format(address=address)
        if local == "tempfail":
            return _TEMPFAIL.format(address=address)
        if local == "busy":
            return _reply(server, _BUSY)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._owner._take_fault("data")
        if fault is not None:
            return _reply(server, fault)
        if any(_local_part(address) == "tempfail-data" for address in envelope.rcpt_tos):
            return _TEMPFAIL_DATA
        content = envelope.content
        data = (
            content.encode("utf-8", "surrogateescape") if isinstance(content, str) else bytes(content or b"")
        )
        message = BytesParser(policy=policy.default).parsebytes(data)
        auth_data = session.auth_data
        login = auth_data.login if isinstance(auth_data, LoginPassword) else None
        queue_id = self._owner._record(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": data,
                "message": message,
                "at": time.time(),
                "login": login.decode() if isinstance(login, bytes) else login,
            }
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


def _reply(server: SMTP, status: str) -> str:
    """Return `status`; after a 421 the server closes the connection once it is sent."""
    if status.startswith("421"):
        transport = server.transport
        if transport is not None:
            # The reply is written before this callback runs; close() flushes it first.
            asyncio.get_running_loop().call_soon(transport.close)
    return status


class FakeSMTP(LocalServer):
    """An SMTP relay on 127.0.0.1 (see the module docstring)."""

    name = "FakeSMTP"
    host = "127.0.0.1"

    def __init__(
        self,
        tls: TLSMode = "none",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be none, starttls or tls, not {tls!r}")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        super().__init__()
        self.tls: TLSMode = tls
        self.username = username
        self.password = password
        self._tmp = tempfile.TemporaryDirectory(prefix="herald-fake-smtp-")
        self.cert_path, self.key_path = write_self_signed_certificate(Path(self._tmp.name))
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._faults: dict[Stage, deque[str]] = {"mail": deque(), "rcpt": deque(), "data": deque()}
        self._open: set[_TrackedSMTP] = set()
        self._connections = 0
        self._controller: _Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and verifies the host)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def start(self) -> Self:
        """Start serving; a restarted fake listens on the same port as before."""
        if self._controller is not None:
            raise RuntimeError("FakeSMTP is already running")
        if self._port is None:
            self._port = free_port(self.host)
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self._port,
            "server_hostname": "localhost",
            "ident": "herald fake ESMTP",
            "decode_data": False,
        }
        if self.tls == "starttls":
            kwargs["tls_context"] = self.server_context()
            kwargs["require_starttls"] = True
        elif self.tls == "tls":
            kwargs["ssl_context"] = self.server_context()
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        controller = _Controller(self, _Handler(self), auth_in_clear=self.tls != "starttls", **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        with self._lock:
            self._open.clear()

    # -- observations ------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first: mail_from, rcpt_tos, data, message, at, login."""
        with self._lock:
            return list(self._messages)

    def accepted_for(self, address: str) -> list[dict[str, Any]]:
        wanted = address.lower()
        with self._lock:
            return [m for m in self._messages if wanted in (r.lower() for r in m["rcpt_tos"])]

    @property
    def connections(self) -> int:
        """Client connections accepted since start (the Controller's start-up probe excluded)."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for protocol in self._open if protocol._counted)

    def reset(self) -> None:
        """Forget messages, the connection count and pending faults."""
        with self._lock:
            self._messages.clear()
            self._connections = 0
            for queue in self._faults.values():
                queue.clear()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(self, n: int, code: int, message: str, at: Stage = "rcpt") -> None:
        """Answer the next `n` MAIL / RCPT / DATA commands with ``code message``."""
        if at not in self._faults:
            raise ValueError(f"at must be mail, rcpt or data, not {at!r}")
        with self._lock:
            self._faults[at].extend(f"{code} {message}" for _ in range(n))

    def disconnect_idle(self) -> None:
        """Drop every open client connection now (no reply), as a relay restart or NAT would."""
        controller = self._controller
        if controller is None:
            return

        async def drop() -> None:
            with self._lock:
                protocols = list(self._open)
            for protocol in protocols:
                transport = protocol.transport
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
                elif transport is not None:
                    transport.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(drop(), controller.loop).result(5)

    # -- callbacks from the server thread ----------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.username is not None and self.password is not None:
            login_ok = hmac.compare_digest(auth_data.login, self.username.encode())
            password_ok = hmac.compare_digest(auth_data.password, self.password.encode())
            if login_ok and password_ok:
                return AuthResult(success=True, auth_data=auth_data)
        # handled=False makes aiosmtpd send 535; handled=True would leave the client waiting.
        return AuthResult(success=False, handled=False)

    def _take_fault(self, stage: Stage) -> str | None:
        with self._lock:
            queue = self._faults[stage]
            return queue.popleft() if queue else None

    def _record(self, record: dict[str, Any]) -> str:
        with self._lock:
            self._messages.append(record)
            return f"{len(self._messages):08X}"

    def _opened(self, protocol: _TrackedSMTP, counted: bool) -> None:
        with self._lock:
            self._open.add(protocol)
            if counted:
                self._connections += 1

    def _closed(self, protocol: _TrackedSMTP) -> None:
        with self._lock:
            self._open.discard(protocol)
