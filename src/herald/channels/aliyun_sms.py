"""SMS through Aliyun's Short Message Service: dysmsapi 2017-05-25 ``SendSms``, on aiohttp.

Aliyun sends only approved text: the request names an approved template (``TemplateCode``) and
gives its variables (``TemplateParam``, a JSON object), both from ``[sms.aliyun]`` in the kind's
``kind.toml`` (``message.rendered.approved["aliyun"]``); herald's own ``sms.<locale>.j2`` copy is
not sent. The sender is the approved signature ``HERALD_ALIYUN_SIGN_NAME``.

The request is Aliyun's RPC style, signed with signature version 1.0 (HMAC-SHA1 over the sorted,
percent-encoded parameters, with ``<AccessKey secret>&`` as the key), every parameter in a
form-encoded POST body to ``HERALD_ALIYUN_SMS_ENDPOINT``: numbers and names stay out of URLs,
which proxies log. The official SDK opens a new connection pool for every call; herald keeps one
session per process (see ``bench/aliyun_client.py``).

The number goes as its E.164 digits without the ``+`` (``8613800138000``): Aliyun reads a
mainland number with an ``86`` prefix and an international one as country code plus number, so
one form serves both. A number whose digits Aliyun would also read as a bare mainland mobile
(most North American ones) is refused before sending: route such numbers elsewhere.

An answer is classified by its ``Code`` first and its HTTP status second. Business errors
(``isv.*``, ``isp.*``) come in an HTTP 200 answer with ``Code`` other than ``OK``; gateway errors
(signature, keys, throttling) with a 4xx or 5xx. ``SendSms`` has no idempotency key, so anything
that may have reached Aliyun's sending side (``isp.*``, 5xx, a timeout after sending) is
ambiguous, never resent blindly. The table is in ``herald.channels.base``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson

from herald.channels.base import (
    AmbiguousError,
    Deferred,
    Message,
    PermanentError,
    Provider,
    ProviderDown,
    ProviderError,
    RetryableError,
    SendResult,
)
from herald.channels.http import make_session, retry_after, transport_error

ACTION: Final = "SendSms"
VERSION: Final = "2017-05-25"
OUT_ID_MAX: Final = 64
"""The longest delivery key sent as ``OutId``: Aliyun documents no limit, so a long key is left
out rather than risk a refusal (reports are matched by ``BizId`` in any case)."""

DEFERRED: Final = frozenset({"isv.BUSINESS_LIMIT_CONTROL"})
"""A carrier's per-number frequency control: a minute, hour or day cap on one recipient."""

DOWN: Final = frozenset(
    {
        "isv.AMOUNT_NOT_ENOUGH",  # the account is out of credit
        "isv.OUT_OF_SERVICE",  # service suspended (balance below zero)
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",  # SMS not activated for the account
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.BILLING_DEDUCTION_ERROR",  # overdue payments
        "isv.DAY_LIMIT_CONTROL",  # the account's own daily cap, set in the console
        "isv.MONTH_LIMIT_CONTROL",  # ... and monthly cap
        "isv.DENY_IP_RANGE",  # this host's region may not send mainland SMS
        "isv.SMS_SIGN_ILLEGAL",  # the signature is banned
        "isv.SMS_SIGNATURE_ILLEGAL",  # HERALD_ALIYUN_SIGN_NAME is not an approved signature
        "isv.SIGN_STATE_ILLEGAL",  # the signature is unusable
        "isp.RAM_PERMISSION_DENY",  # the key's RAM user lacks SMS permission
        "SignatureDoesNotMatch",  # wrong secret
        "IncompleteSignature",
        "InvalidSignatureMethod",
        "InvalidTimeStamp.Expired",  # this host's clock is off by more than 15 minutes
        "InvalidTimeStamp.Format",
        "InvalidAction.NotFound",  # the endpoint is not dysmsapi's
        "InvalidApi.NotFound",
        "InvalidVersion",
    }
)
"""Nothing sent through Aliyun will be accepted until someone acts."""
DOWN_PREFIXES: Final = ("Forbidden", "InvalidAccessKeyId")
COMMON: Final = frozenset(
    {
        "AccessKeyId",
        "Action",
        "Format",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "Version",
    }
)
"""The common parameters: one reported missing (``Missing<Name>``) is missing from every request."""

RETRYABLE: Final = frozenset({"ServiceUnavailable", "SignatureNonceUsed"})
"""Refused before anything was sent; a fresh request (a new nonce) may pass."""
RETRYABLE_PREFIXES: Final = ("Throttling",)
RETRYABLE_SUFFIXES: Final = ("FLOW_CONTROL",)

AMBIGUOUS: Final = frozenset({"InternalError", "ServiceTimeout"})
AMBIGUOUS_PREFIXES: Final = ("isp.",)
"""Aliyun's own failures (``isp.SYSTEM_ERROR``): the message may or may not have gone out."""

LIMIT_WAITS: Final = (
    (("分钟", "minute"), 60.0),
    (("小时", "hour"), 3600.0),
    (("天", "日", "day"), 86400.0),
)
"""Which cap a BUSINESS_LIMIT_CONTROL message names (``触发小时级流控Permits:5``) and how long
to wait for it; Aliyun counts a day as the 24 hours before the send, so a day waits 24 hours."""
DEFAULT_LIMIT_WAIT: Final = 3600.0

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MAINLAND_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun's signature wants it: only letters, digits
    and ``-_.~`` stay as they are; a space is ``%20``, never ``+``."""
    return quote(value, safe="-_.~")


_encode_constant = lru_cache(maxsize=256)(percent_encode)
""":func:`percent_encode` of what is the same in every request (names, key, action, signature
name, template code): cached. Values that name a person (number, parameters) are never kept."""
PER_MESSAGE: Final = frozenset({"PhoneNumbers", "TemplateParam", "OutId", "SignatureNonce", "Timestamp"})


def canonical_query(params: Mapping[str, str]) -> str:
    """The parameters sorted by name, each ``name=value`` percent-encoded, joined by ``&``."""
    return "&".join(
        f"{_encode_constant(k)}={percent_encode(v) if k in PER_MESSAGE else _encode_constant(v)}"
        for k, v in sorted(params.items())
    )


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Aliyun's RPC signature v1.0 of ``params`` (without ``Signature``): base64 of HMAC-SHA1,
    keyed with ``secret + "&"``, over ``METHOD&%2F&<percent-encoded canonical query>``."""
    return query_signature(method, canonical_query(params), secret)


def query_signature(method: str, query: str, secret: str) -> str:
    """:func:`rpc_signature` of an already canonical query (the request body reuses it)."""
    string_to_sign = f"{method.upper()}&%2F&{quote(query, safe='-_.~')}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def phone_numbers(address: str) -> str:
    """The ``PhoneNumbers`` value for an E.164 address: its digits, country code first.

    Aliyun reads 11 digits starting ``1[3-9]`` as a mainland mobile with no prefix, and so would
    a North American number (``+1 470 555 0123`` is ``14705550123``, a mainland ``147`` mobile):
    such a number is refused here, never sent to a stranger in China."""
    if not _E164.match(address):
        raise PermanentError("not an E.164 phone number", code="invalid_number")
    digits = address[1:]
    if not digits.startswith("86") and _MAINLAND_MOBILE.match(digits):
        raise PermanentError(
            "Aliyun would read this number as a mainland mobile; route its country code to another "
            "provider (HERALD_SMS_ROUTES)",
            code="ambiguous_number",
        )
    return digits


def limit_wait(message: str) -> float:
    """Seconds to wait after a BUSINESS_LIMIT_CONTROL whose message names its cap."""
    lowered = message.lower()
    for words, seconds in LIMIT_WAITS:
        if any(word in lowered for word in words):
            return seconds
    return DEFAULT_LIMIT_WAIT


def _throttle_wait(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds, or ``x-acs-retry-after`` (milliseconds, as the official SDK
    reads it)."""
    after = retry_after(headers.get("Retry-After"))
    if after is not None:
        return after
    acs = retry_after(headers.get("x-acs-retry-after"))
    return acs / 1000 if acs else None


def classify(status: int, code: str, message: str, headers: Mapping[str, str]) -> ProviderError:
    """The taxonomy class of an answer that is not a success: by ``Code`` first (business codes
    come with HTTP 200), by HTTP status when the code is unknown or missing."""
    text = message or f"HTTP {status}"
    tag: str | int = code or status
    if code in DEFERRED:
        return Deferred(text, code=code, retry_after=limit_wait(message))
    if code in DOWN or code.startswith(DOWN_PREFIXES) or (code.startswith("Missing") and code[7:] in COMMON):
        return ProviderDown(text, code=code)
    if code in RETRYABLE or code.startswith(RETRYABLE_PREFIXES) or code.endswith(RETRYABLE_SUFFIXES):
        return RetryableError(text, code=code, retry_after=_throttle_wait(headers))
    if code in AMBIGUOUS or code.startswith(AMBIGUOUS_PREFIXES):
        return AmbiguousError(text, code=code)
    if code.startswith("isv."):
        return PermanentError(text, code=code)
    if status in (401, 403):
        return ProviderDown(f"credentials refused ({text}); check the configuration", code=tag)
    if status in (429, 503):
        return RetryableError(text, code=tag, retry_after=_throttle_wait(headers))
    if status >= 500:
        return AmbiguousError(text, code=tag)
    if status >= 400 or code:
        return PermanentError(text, code=tag)
    return AmbiguousError(f"an answer without a Code ({text})", code=tag)


def _fields(text: str) -> dict[str, Any]:
    try:
        body: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


class AliyunSMSProvider(Provider):
    """Sends one ``SendSms`` per delivery with the kind's approved template; the ``BizId`` is the
    provider reference a delivery report names."""

    name = "aliyun"
    approved_only = True
    receipts = True
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Check the configuration is complete and open the HTTP session on this process's loop."""
        s = self.settings
        missing = [
            env
            for env, value in (
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", s.aliyun_access_key_id),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", s.aliyun_access_key_secret),
                ("HERALD_ALIYUN_SIGN_NAME", s.aliyun_sign_name),
            )
            if not value
        ]
        if missing:
            raise RuntimeError(f"Aliyun SMS needs {', '.join(missing)}")
        self._url = s.aliyun_sms_endpoint.rstrip("/") + "/"
        self._session = make_session(s)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _params(self, message: Message) -> dict[str, str]:
        """Every request parameter but ``Signature``: the common ones, then SendSms's own."""
        s = self.settings
        approved = message.rendered.approved.get("aliyun")
        if approved is None:
            raise PermanentError(
                f"{message.kind} has no approved Aliyun template ([sms.aliyun] in its kind.toml)",
                code="no_template",
            )
        if not isinstance(message.address, str):
            raise PermanentError("an SMS goes to one phone number", code="invalid_number")
        assert s.aliyun_access_key_id is not None
        assert s.aliyun_sign_name is not None
        params = {
            "AccessKeyId": s.aliyun_access_key_id,
            "Action": ACTION,
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
            "PhoneNumbers": phone_numbers(message.address),
            "SignName": s.aliyun_sign_name,
            "TemplateCode": approved.code,
            "TemplateParam": orjson.dumps(approved.params).decode(),
        }
        if len(message.key) <= OUT_ID_MAX:
            params["OutId"] = message.key
        return params

    def body(self, message: Message) -> str:
        """The signed, form-encoded request body for ``message`` (a fresh nonce each call)."""
        params = self._params(message)
        secret = self.settings.aliyun_access_key_secret
        assert secret is not None
        query = canonical_query(params)
        signature = query_signature("POST", query, secret.get_secret_value())
        return f"{query}&Signature={quote(signature, safe='-_.~')}"

    async def send(self, message: Message) -> SendResult:
        """Send one SMS; the answer's ``Code`` (then its HTTP status) decides the error class."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        data = self.body(message)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        bound = self.settings.connect_timeout + self.settings.provider_timeout + 5
        try:
            async with asyncio.timeout(bound):
                async with self._session.post(self._url, data=data.encode(), headers=headers) as r:
                    text = await r.text()
                    status, answer_headers = r.status, r.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, "aliyun") from None
        answer = _fields(text)
        code = str(answer.get("Code") or "")
        if status == 200 and code == "OK":
            detail = {"request_id": str(answer.get("RequestId") or "")}
            return SendResult(provider_ref=str(answer.get("BizId") or ""), detail=detail)
        message_text = str(answer.get("Message") or text[:200]).strip()[:300]
        raise classify(status, code, message_text, answer_headers)
