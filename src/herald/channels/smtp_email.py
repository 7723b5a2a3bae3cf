"""Email through an SMTP relay with aiosmtplib, on a small pool of connections per process.

Each message is one SMTP transaction on a pooled connection (MAIL, RCPT, DATA), so that the
point of acceptance is known: a failure before DATA is safe to retry, a refusal is classified by
its reply code (4xx retry, 5xx permanent), and a connection lost during DATA is ambiguous.
Connections are reused and checked with NOOP after sitting idle; a dropped one is replaced.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import Policy
from email.utils import format_datetime, make_msgid

import aiosmtplib

from herald import clock
from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    SendResult,
)
from herald.rendering.links import unsubscribe_url

IDLE_CHECK = 10.0  # seconds idle after which a pooled connection is checked with NOOP


class PlainHeader(str):
    """A header of ASCII items (``<https://...>``, ``<mailto:...>``) written as it is, one item a
    line: Python's folding would encode an item longer than a line as an RFC 2047 encoded-word
    (``=?utf-8?q?=3Chttps...``), which a receiver looking for RFC 2369/8058 links does not read.
    Lines stay far below RFC 5322's 998 characters."""

    name: str
    items: tuple[str, ...]

    def __new__(cls, name: str, items: list[str]) -> PlainHeader:
        """``name: item1,\r\n item2`` (folded after each comma); see :meth:`fits` first."""
        header = super().__new__(cls, ", ".join(items))
        header.name = name
        header.items = tuple(items)
        return header

    @staticmethod
    def fits(items: list[str]) -> bool:
        """Whether ``items`` can go out as they are: ASCII, no line breaks, short lines."""
        return all(
            item.isascii() and "\r" not in item and "\n" not in item and len(item) < 900 for item in items
        )

    def fold(self, *, policy: Policy) -> str:
        """The header as sent (the email policy asks each header object to fold itself)."""
        return f"{self.name}: " + f",{policy.linesep} ".join(self.items) + policy.linesep


def _by_code(code: int, message: str, stage: str) -> ProviderError:
    text = f"{stage} refused: {message}"
    return PermanentError(text, code=code) if code >= 500 else RetryableError(text, code=code)


class SMTPEmailProvider(Provider):
    """Sends multipart (text + HTML) email with unsubscribe headers."""

    name = "smtp"
    _pool: asyncio.LifoQueue[tuple[aiosmtplib.SMTP, float]] | None = None

    async def start(self) -> None:
        """Check the configuration and create the (empty) pool."""
        s = self.settings
        if not s.smtp_host or not s.email_from:
            raise RuntimeError("SMTP needs HERALD_SMTP_HOST and HERALD_EMAIL_FROM")
        self._pool = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(s.smtp_pool)
        self._tls: ssl.SSLContext | None = None
        if s.smtp_tls != "none":
            self._tls = ssl.create_default_context(cafile=str(s.smtp_ca_file) if s.smtp_ca_file else None)

    def capacity(self) -> int:
        """One request per pooled connection (``HERALD_SMTP_POOL``)."""
        return self.settings.smtp_pool

    async def close(self) -> None:
        """Quit every pooled connection."""
        while self._pool is not None and not self._pool.empty():
            client, _ = self._pool.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.provider_timeout,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            tls_context=self._tls,
        )
        try:
            await asyncio.wait_for(client.connect(), timeout=s.connect_timeout + s.provider_timeout)
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                await client.login(s.smtp_username, password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise RetryableError(
                f"smtp: authentication refused ({exc.code}); check the credentials", code=exc.code
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:  # ssl errors are OSErrors
            client.close()
            raise RetryableError(f"smtp: could not connect ({type(exc).__name__})", code="connect") from None
        return client

    async def _acquire(self) -> aiosmtplib.SMTP:
        assert self._pool is not None
        while not self._pool.empty():
            client, since = self._pool.get_nowait()
            if not client.is_connected:
                continue
            if time.monotonic() - since < IDLE_CHECK:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return await self._connect()

    def _release(self, client: aiosmtplib.SMTP) -> None:
        assert self._pool is not None
        if client.is_connected:
            self._pool.put_nowait((client, time.monotonic()))

    def build(self, message: Message) -> EmailMessage:
        """The MIME message: text and HTML alternatives, Message-ID, List-Unsubscribe headers."""
        s = self.settings
        content = message.rendered.content()
        email = EmailMessage(policy=SMTP_POLICY)
        email["From"] = s.email_from
        email["To"] = str(message.address)
        email["Subject"] = content["subject"]
        email["Date"] = format_datetime(clock.now())  # +0000: -0000 would say "zone unknown"
        domain = str(s.email_from).rpartition("@")[2].strip(">") or None
        email["Message-ID"] = make_msgid(idstring=message.key.replace(":", "."), domain=domain)
        links = [f"<mailto:{str(s.email_from).strip('<>').rpartition('<')[2]}?subject=unsubscribe>"]
        url = unsubscribe_url(s, "email", str(message.address))
        if url:
            links.insert(0, f"<{url}>")
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        # plain when it can be (always, with an ASCII HERALD_PUBLIC_URL); else Python encodes it
        fits = PlainHeader.fits(links)
        email["List-Unsubscribe"] = PlainHeader("List-Unsubscribe", links) if fits else ", ".join(links)
        email["X-Herald-Delivery"] = message.key
        email.set_content(content["text"])
        if content["html"]:
            email.add_alternative(content["html"], subtype="html")
        return email

    async def send(self, message: Message) -> SendResult:
        """One SMTP transaction; the reply codes decide the error class."""
        if self._pool is None:
            await self.start()
        email = self.build(message)
        data = email.as_bytes(policy=SMTP_POLICY)
        sender = str(self.settings.email_from).strip("<>").rpartition("<")[2]
        async with self._slots:
            client = await self._acquire()
            try:
                try:
                    await client.mail(sender)
                    await client.rcpt(str(message.address))
                except aiosmtplib.SMTPResponseException as exc:  # refused: MAIL or RCPT
                    await _reset(client)
                    stage = "sender" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "recipient"
                    raise _by_code(exc.code, exc.message, stage) from None
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    client.close()
                    raise RetryableError(
                        f"smtp: connection lost before DATA ({type(exc).__name__})", code="io"
                    ) from None
                try:
                    response = await client.data(data)
                except aiosmtplib.SMTPResponseException as exc:
                    await _reset(client)
                    raise _by_code(exc.code, exc.message, "message") from None
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    client.close()
                    raise AmbiguousError(
                        f"smtp: connection lost during DATA ({type(exc).__name__})", code="io"
                    ) from None
            finally:
                self._release(client)
        return SendResult(
            provider_ref=str(email["Message-ID"]).strip("<>"), detail={"reply": response.message}
        )


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
