"""A local server that speaks Aliyun SMS's ``SendSms`` (dysmsapi 2017-05-25) and pushes its reports.

`FakeAliyunSMS` runs an aiohttp application on 127.0.0.1 in a background thread with its own
event loop, so the test process and worker subprocesses can all reach it. Point herald at it with
``HERALD_ALIYUN_SMS_ENDPOINT=fake.url``, or the official SDK with
``Config(endpoint=f"127.0.0.1:{fake.port}", protocol="http", signature_algorithm="v2")`` (the
SDK's default signs with ACS3-HMAC-SHA256 in a header, which this stand-in does not speak).

Written from Aliyun's published documentation: the RPC request structure and signature
(version 1.0: HMAC-SHA1 over ``METHOD&%2F&percentEncode(sorted, percent-encoded parameters)``,
keyed with ``<AccessKey secret>&``), the common client error codes of Aliyun's API gateway, the
``SendSms`` reference and its error codes, and the SmsReport HTTP batch push. Parameters may come
in the query string (the official SDK), a form-encoded body (herald), or both; the signature
covers them all.

Order of checks, as the gateway and then the SMS service apply them:

1. common parameters present (400 ``Missing<Name>``), ``Action`` and ``Version`` (404
   ``InvalidAction.NotFound``, 400 ``InvalidVersion``), ``SignatureMethod`` (400
   ``InvalidSignatureMethod``), ``SignatureVersion`` (400 ``IncompleteSignature``);
2. ``Timestamp``: ISO 8601 UTC (400 ``InvalidTimeStamp.Format``), within 15 minutes of now (400
   ``InvalidTimeStamp.Expired``);
3. ``AccessKeyId`` (404 ``InvalidAccessKeyId.NotFound``), the signature (400
   ``SignatureDoesNotMatch``, with the server's string to sign), the nonce unused in the last
   15 minutes (400 ``SignatureNonceUsed``);
4. outage and queued faults (`set_outage`, `fail_next`); a refused request is not recorded;
5. ``SendSms``'s required parameters (400 ``MissingPhoneNumbers``, ``MissingSignName``,
   ``MissingTemplateCode``), then business checks, each an HTTP 200 with ``Code``:
   ``isv.AMOUNT_NOT_ENOUGH`` (`out_of_credit`), ``isv.SMS_SIGNATURE_ILLEGAL`` (not the approved
   signature), ``isv.SMS_TEMPLATE_ILLEGAL`` (not an approved template; any ``SMS_<digits>`` when
   none were given), ``isv.INVALID_JSON_PARAM`` (``TemplateParam`` not a JSON object of strings),
   ``isv.TEMPLATE_MISSING_PARAMETERS`` (a variable of the template without a value, when the
   template's variables were given), ``isv.PARAM_LENGTH_LIMIT`` (a value over 35 characters),
   ``isv.MOBILE_COUNT_OVER_LIMIT`` (over 1,000 numbers), ``isv.MOBILE_NUMBER_ILLEGAL`` (a number in
   none of the documented forms, or one `block` names), ``isv.BUSINESS_LIMIT_CONTROL`` (a number
   `limit` names: the carrier's per-number cap);
6. accepted: ``{"Code": "OK", "Message": "OK", "BizId": "<digits>^0", "RequestId": "<UUID>"}``
   (then `hang_next` or `hang_all`).

Numbers, as ``SendSms`` documents them: a mainland mobile bare (``13800138000``) or with ``+``,
``+86``, ``0086`` or ``86`` in front; any other as country code and number (``85200001234``).

Answers are JSON when ``Format=JSON`` (any case), XML otherwise (Aliyun's default). Gateway errors
carry ``RequestId``, ``HostId``, ``Code``, ``Message`` and ``Recommend``; 502 and 504 answer a
load balancer's HTML page, not JSON.

Reports: `push_reports` POSTs the SmsReport batch (a JSON array of ``phone_number``,
``send_time``, ``report_time``, ``success``, ``err_code``, ``err_msg``, ``sms_size``, ``biz_id``,
``out_id``) to a URL, as Aliyun's HTTP batch push does; Aliyun counts it received only on an
HTTP 200 whose JSON ``code`` is a number (`report_received`). It is synchronous: from a coroutine
whose loop also runs the receiver, call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from xml.sax.saxutils import escape

from aiohttp import web

from tests.standins.base import AiohttpServer, Recording

ACTION: Final = "SendSms"
VERSION: Final = "2017-05-25"
HOST_ID: Final = "dysmsapi.aliyuncs.com"
WINDOW: Final = 15 * 60
"""How far ``Timestamp`` may be from now, and how long a ``SignatureNonce`` stays used."""
MAX_PARAM_CHARS: Final = 35
MAX_NUMBERS: Final = 1000
COMMON: Final = (
    "AccessKeyId",
    "Action",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
)
REQUEST_FIELDS: Final = frozenset(
    {
        "OutId",
        "OwnerId",
        "PhoneNumbers",
        "ResourceOwnerAccount",
        "ResourceOwnerId",
        "SignName",
        "SmsUpExtendCode",
        "TemplateCode",
        "TemplateParam",
    }
)
"""``SendSms``'s own parameters, as the official SDK's ``SendSmsRequest`` names them."""
ANSWER_FIELDS: Final = frozenset({"BizId", "Code", "Message", "RequestId"})
"""The fields of ``SendSmsResponseBody`` in the official SDK."""
REPORT_FIELDS: Final = (
    "phone_number",
    "send_time",
    "report_time",
    "success",
    "err_code",
    "err_msg",
    "sms_size",
    "biz_id",
    "out_id",
)
"""The fields of one SmsReport entry, in the documented order."""

CHINA: Final = timezone(timedelta(hours=8))
_MAINLAND = re.compile(r"^(?:\+|\+86|0086|86)?(1[3-9][0-9]{9})$")
_INTERNATIONAL = re.compile(r"^(?:\+|00)?([1-9][0-9]{6,14})$")
_TEMPLATE_CODE = re.compile(r"^SMS_[0-9]+$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

# Gateway errors: (HTTP status, message), as Aliyun's API gateway documents them.
_GATEWAY: Final[dict[str, tuple[int, str]]] = {
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidSignatureMethod": (400, "Specified signature method is not valid."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAccessKeyId.Inactive": (400, "Specified access key is disabled."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource."),
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}
_STATUS_CODES: Final[dict[int, str]] = {
    400: "InvalidParameter",
    403: "Forbidden.RAM",
    404: "InvalidAction.NotFound",
    429: "Throttling.User",
    500: "InternalError",
    503: "ServiceUnavailable",
}
_HTML_STATUSES: Final = frozenset({502, 504})
"""Answered by the load balancer in front of the gateway: an HTML page, no JSON."""

# Business errors: an HTTP 200 with this Code and Message (the domestic API's Chinese messages).
_BUSINESS: Final[dict[str, str]] = {
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.OUT_OF_SERVICE": "业务停机",
    "isv.ACCOUNT_NOT_EXISTS": "账户不存在",
    "isv.ACCOUNT_ABNORMAL": "账户异常",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板变量缺少对应参数值",
    "isv.PARAM_LENGTH_LIMIT": "参数超出长度限制",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isv.BLACK_KEY_CONTROL_LIMIT": "模板变量中存在黑名单关键字",
    "isv.BUSINESS_LIMIT_CONTROL": "触发小时级流控Permits:5",
    "isp.SYSTEM_ERROR": "系统出现错误，请重新调用",
}
_LIMIT_MESSAGES: Final[dict[str, str]] = {
    "minute": "触发分钟级流控Permits:1",
    "hour": "触发小时级流控Permits:5",
    "day": "触发天级流控Permits:10",
}
_REPORT_MESSAGES: Final[dict[str, str]] = {"DELIVERED": "用户接收成功"}


def percent_encode(text: str) -> str:
    """Aliyun's percentEncode: UTF-8, RFC 3986 unreserved characters kept, ``%20`` for a space."""
    encoded = urllib.parse.quote_plus(text, safe="~", encoding="utf-8")
    return encoded.replace("+", "%20").replace("*", "%2A")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The documented string to sign of a request's parameters (``Signature`` left out)."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join((method.upper(), percent_encode("/"), percent_encode(canonical)))


def expected_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """The signature Aliyun computes for these parameters with this AccessKey secret."""
    key = (secret + "&").encode("utf-8")
    mac = hmac.new(key, string_to_sign(method, params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def normalize_number(number: str) -> str | None:
    """A ``PhoneNumbers`` entry as E.164 (``+8613800138000``), or None when Aliyun would refuse it."""
    number = number.strip()
    mainland = _MAINLAND.match(number)
    if mainland:
        return "+86" + mainland.group(1)
    international = _INTERNATIONAL.match(number)
    if international and not international.group(1).startswith("86"):
        return "+" + international.group(1)
    return None


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _biz_id() -> str:
    return f"{secrets.randbelow(9 * 10**17) + 10**17}^0"


def _china_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class _Fault:
    status: int
    code: str | None
    message: str | None


class _Refused(Exception):
    """A request refused with a ready answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("Code"))
        self.status = status
        self.body = body


def _gateway(code: str, message: str | None = None, status: int | None = None) -> _Refused:
    known_status, known_message = _GATEWAY.get(code, (400, code))
    return _Refused(
        status or known_status,
        {
            "RequestId": _request_id(),
            "HostId": HOST_ID,
            "Code": code,
            "Message": message or known_message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi",
        },
    )


def _business(code: str, message: str | None = None) -> _Refused:
    return _Refused(
        200, {"RequestId": _request_id(), "Code": code, "Message": message or _BUSINESS.get(code, code)}
    )


def _fault_answer(fault: _Fault) -> _Refused:
    if fault.code is not None:
        if fault.code in _GATEWAY or not fault.code.startswith(("isv.", "isp.")):
            return _gateway(fault.code, fault.message, fault.status if fault.status != 200 else None)
        return _business(fault.code, fault.message)
    return _gateway(_STATUS_CODES.get(fault.status, "InternalError"), fault.message, fault.status)


def _xml(body: dict[str, Any], root: str) -> str:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in body.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><{root}>{inner}</{root}>'


def _answer(status: int, body: dict[str, Any], fmt: str, root: str = "SendSmsResponse") -> web.Response:
    if status in _HTML_STATUSES:
        page = f"<html><body><h1>{status}</h1><p>The gateway did not answer in time.</p></body></html>"
        return web.Response(status=status, text=page, content_type="text/html")
    if fmt.lower() == "json":
        return web.json_response(body, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))
    return web.Response(
        status=status, text=_xml(body, root if status == 200 else "Error"), content_type="text/xml"
    )


class FakeAliyunSMS(AiohttpServer, Recording):
    """Aliyun SMS's ``SendSms`` on 127.0.0.1 (see the module docstring).

    Parameters: ``access_key_id`` / ``access_key_secret`` (random when not given), ``sign_name``
    (the one approved signature), ``templates`` (the approved template codes, or a mapping of
    code to its variable names; None accepts any ``SMS_<digits>``), ``latency`` (seconds before
    every answer).

    `accepted` lists the accepted messages, oldest first, as dicts with ``biz_id``,
    ``request_id``, ``to`` (E.164), ``phone_numbers`` (as sent), ``sign_name``, ``template_code``,
    ``template_param`` (dict), ``out_id``, ``nonce``, ``at`` (epoch seconds) and ``held_back``.
    `requests` counts every request received, refused ones included; `in_flight` those not
    answered yet and `peak_in_flight` the most at once. All are safe to read from any thread.
    """

    name = "FakeAliyunSMS"
    thread_name = "fake-aliyun-sms"

    def __init__(
        self,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        sign_name: str = "赫拉德信贷",
        templates: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__()
        self.access_key_id = access_key_id or "LTAI" + secrets.token_hex(10)
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(22)
        self.sign_name = sign_name
        self.templates: dict[str, frozenset[str] | None] | None
        if templates is None:
            self.templates = None
        elif isinstance(templates, Mapping):
            self.templates = {code: frozenset(names) for code, names in templates.items()}
        else:
            self.templates = dict.fromkeys(templates)
        self.latency = latency
        self._start_records()
        self._in_flight = 0
        self._peak = 0
        self._nonces: dict[str, float] = {}
        self._faults: deque[_Fault] = deque()
        self._outage: _Fault | None = None
        self._hangs: deque[float] = deque()
        self._hang_all = 0.0
        self._blocked: set[str] = set()
        self._limited: dict[str, str] = {}
        self._no_credit = False
        self.last_report_answer: tuple[int, str] | None = None
        """The HTTP status and body of the last `push_reports` answer."""

    # -- lifecycle ---------------------------------------------------------------------------

    backlog = 2048

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)

    def herald_env(self) -> dict[str, str]:
        """The settings that point herald's Aliyun provider here, with its approved signature."""
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
            "HERALD_ALIYUN_SIGN_NAME": self.sign_name,
            "HERALD_ALIYUN_SMS_ENDPOINT": self.url,
        }

    # -- observations ------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests received and not answered yet."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were being answered at once since the last `reset`."""
        with self._lock:
            return self._peak

    def accepted_to(self, number: str) -> list[dict[str, Any]]:
        """The accepted messages to ``number`` (in any form Aliyun accepts)."""
        target = normalize_number(number)
        with self._lock:
            return [record for record in self._accepted if record["to"] == target]

    def message(self, biz_id: str) -> dict[str, Any]:
        """The accepted message with this BizId (KeyError if there is none)."""
        with self._lock:
            for record in self._accepted:
                if record["biz_id"] == biz_id:
                    return record
        raise KeyError(biz_id)

    def reset(self) -> None:
        """Forget records, counters, used nonces, faults, blocks, limits and the credit state."""
        with self._lock:
            self._accepted.clear()
            self._requests = 0
            self._peak = self._in_flight
            self._nonces.clear()
            self._faults.clear()
            self._outage = None
            self._hangs.clear()
            self._hang_all = 0.0
            self._blocked.clear()
            self._limited.clear()
            self._no_credit = False
            self.last_report_answer = None

    # -- recipients, account and faults ------------------------------------------------------

    def block(self, number: str) -> None:
        """Sends to ``number`` answer ``isv.MOBILE_NUMBER_ILLEGAL`` until `unblock`."""
        with self._lock:
            self._blocked.add(normalize_number(number) or number)

    def unblock(self, number: str) -> None:
        with self._lock:
            self._blocked.discard(normalize_number(number) or number)

    def limit(self, number: str, level: str = "hour") -> None:
        """Sends to ``number`` answer ``isv.BUSINESS_LIMIT_CONTROL`` (its ``minute``, ``hour`` or
        ``day`` cap reached) until `unlimit`."""
        if level not in _LIMIT_MESSAGES:
            raise ValueError(f"level is one of {sorted(_LIMIT_MESSAGES)}")
        with self._lock:
            self._limited[normalize_number(number) or number] = level

    def unlimit(self, number: str) -> None:
        with self._lock:
            self._limited.pop(normalize_number(number) or number, None)

    def out_of_credit(self, out: bool = True) -> None:
        """Every send answers ``isv.AMOUNT_NOT_ENOUGH`` until called with False (or `reset`)."""
        with self._lock:
            self._no_credit = out

    def fail_next(
        self, n: int, status: int | None = None, *, code: str | None = None, message: str | None = None
    ) -> None:
        """Refuse the next ``n`` authenticated requests: ``fail_next(1, 500)``,
        ``fail_next(2, code="Throttling.User")``, ``fail_next(1, code="isp.SYSTEM_ERROR")``.

        A gateway code takes its documented status; an ``isv.``/``isp.`` code comes in an HTTP
        200; a bare status takes its usual code (500 ``InternalError``, 503
        ``ServiceUnavailable``, 429 ``Throttling.User``); 502 and 504 answer HTML.
        """
        if status is None and code is None:
            raise ValueError("give a status, a code or both")
        fault = _Fault(status or 200, code, message)
        with self._lock:
            self._faults.extend(fault for _ in range(n))

    def set_outage(self, status: int | None = None, *, code: str | None = None) -> None:
        """Refuse every authenticated request as `fail_next` would, until called with neither."""
        with self._lock:
            self._outage = None if status is None and code is None else _Fault(status or 200, code, None)

    def hang_next(self, n: int, seconds: float) -> None:
        """The next ``n`` messages are accepted (recorded) and answered only after ``seconds``:
        the client sees a timeout although Aliyun has the message, the ambiguous case."""
        with self._lock:
            self._hangs.extend(seconds for _ in range(n))

    def hang_all(self, seconds: float | None) -> None:
        """Accept (record) every message and answer each only after ``seconds``, until None."""
        with self._lock:
            self._hang_all = seconds or 0.0

    # -- delivery reports --------------------------------------------------------------------

    def report_body(self, reports: Sequence[tuple[str, bool, str]]) -> list[dict[str, Any]]:
        """The SmsReport array for ``(biz_id, success, err_code)`` triples: the phone number,
        out_id and send time come from the accepted message with that BizId (empty when none)."""
        now = time.time()
        body = []
        for biz_id, success, err_code in reports:
            try:
                record: dict[str, Any] = self.message(biz_id)
            except KeyError:
                record = {"to": "", "out_id": "", "at": now}
            to = str(record["to"] or "")
            code = err_code or ("DELIVERED" if success else "UNDELIV")
            body.append(
                {
                    "phone_number": to[3:] if to.startswith("+86") else to.lstrip("+"),
                    "send_time": _china_time(record["at"]),
                    "report_time": _china_time(now),
                    "success": success,
                    "err_code": code,
                    "err_msg": _REPORT_MESSAGES.get(code, "用户接收成功" if success else "用户接收失败"),
                    "sms_size": "1",
                    "biz_id": biz_id,
                    "out_id": str(record["out_id"] or ""),
                }
            )
        return body

    def push_reports(self, url: str, reports: Sequence[tuple[str, bool, str]]) -> int:
        """POST the SmsReport batch for ``reports`` to ``url``, as Aliyun's HTTP batch push does;
        returns the HTTP status (the answer is kept in `last_report_answer`)."""
        data = json.dumps(self.report_body(reports), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json;charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                self.last_report_answer = (int(response.status), response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as error:
            self.last_report_answer = (int(error.code), error.read().decode("utf-8", "replace"))
        return self.last_report_answer[0]

    def report_received(self) -> bool:
        """Whether Aliyun would count the last push received: HTTP 200 and a numeric ``code``."""
        if self.last_report_answer is None:
            return False
        status, text = self.last_report_answer
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            return False
        code = answer.get("code") if isinstance(answer, dict) else None
        return status == 200 and isinstance(code, int | float) and not isinstance(code, bool)

    # -- the API -----------------------------------------------------------------------------

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        refused = _gateway("InvalidAction.NotFound")
        return _answer(refused.status, refused.body, "json")

    async def _handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return await self._rpc(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _rpc(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in request.rel_url.query.items()}
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            for key, value in (await request.post()).items():
                params.setdefault(key, str(value))
        fmt = params.get("Format", "XML")
        try:
            self._authenticate(request.method, params)
            with self._lock:
                fault = self._outage or (self._faults.popleft() if self._faults else None)
            if fault is not None:
                raise _fault_answer(fault)
            record = self._validate(params)
        except _Refused as refused:
            return _answer(refused.status, refused.body, fmt)
        with self._changed:
            self._record(record)
            hang = (self._hangs.popleft() if self._hangs else 0.0) or self._hang_all
            record["held_back"] = hang
        if hang > 0:
            await asyncio.sleep(hang)
        body = {"Message": "OK", "RequestId": record["request_id"], "Code": "OK", "BizId": record["biz_id"]}
        return _answer(200, body, fmt)

    def _authenticate(self, method: str, params: dict[str, str]) -> None:
        """The gateway's checks: parameters, action, time, key, signature, nonce."""
        for name in COMMON:
            if not params.get(name):
                raise _gateway(f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] != ACTION:
            raise _gateway("InvalidAction.NotFound")
        if params["Version"] != VERSION:
            raise _gateway("InvalidVersion")
        if params["SignatureMethod"] != "HMAC-SHA1":
            raise _gateway("InvalidSignatureMethod")
        if params["SignatureVersion"] != "1.0":
            raise _gateway("IncompleteSignature")
        stamp = params["Timestamp"]
        if not _TIMESTAMP.match(stamp):
            raise _gateway("InvalidTimeStamp.Format")
        try:
            moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise _gateway("InvalidTimeStamp.Format") from None
        now = time.time()
        if abs(now - moment) > WINDOW:
            raise _gateway("InvalidTimeStamp.Expired")
        if not hmac.compare_digest(params["AccessKeyId"].encode(), self.access_key_id.encode()):
            raise _gateway("InvalidAccessKeyId.NotFound")
        wanted = expected_signature(method, params, self.access_key_secret)
        if not hmac.compare_digest(params["Signature"].encode(), wanted.encode()):
            raise _gateway(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
            )
        nonce = params["SignatureNonce"]
        with self._lock:
            if len(self._nonces) > 10_000:
                self._nonces = {k: t for k, t in self._nonces.items() if now - t <= WINDOW}
            seen = self._nonces.get(nonce)
            if seen is not None and now - seen <= WINDOW:
                raise _gateway("SignatureNonceUsed")
            self._nonces[nonce] = now

    def _validate(self, params: dict[str, str]) -> dict[str, Any]:
        """``SendSms``'s checks; the record of the message to accept."""
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise _gateway(f"Missing{name}", f"{name} is mandatory for this action.")
        with self._lock:
            no_credit = self._no_credit
        if no_credit:
            raise _business("isv.AMOUNT_NOT_ENOUGH")
        if params["SignName"] != self.sign_name:
            raise _business("isv.SMS_SIGNATURE_ILLEGAL")
        code = params["TemplateCode"]
        known = _TEMPLATE_CODE.match(code) if self.templates is None else code in self.templates
        if not known:
            raise _business("isv.SMS_TEMPLATE_ILLEGAL")
        values: dict[str, str] = {}
        if params.get("TemplateParam"):
            try:
                decoded = json.loads(params["TemplateParam"])
            except json.JSONDecodeError:
                raise _business("isv.INVALID_JSON_PARAM") from None
            if not isinstance(decoded, dict) or not all(isinstance(v, str) for v in decoded.values()):
                raise _business("isv.INVALID_JSON_PARAM")
            values = decoded
        variables = self.templates.get(code) if self.templates is not None else None
        if variables is not None and not variables <= set(values):
            raise _business("isv.TEMPLATE_MISSING_PARAMETERS")
        if any(len(v) > MAX_PARAM_CHARS for v in values.values()):
            raise _business("isv.PARAM_LENGTH_LIMIT")
        raw = params["PhoneNumbers"].split(",")
        if len(raw) > MAX_NUMBERS:
            raise _business("isv.MOBILE_COUNT_OVER_LIMIT")
        numbers = [normalize_number(n) for n in raw]
        with self._lock:
            blocked = any(n in self._blocked for n in numbers)
            limited = next((self._limited[n] for n in numbers if n in self._limited), None)
        if blocked or None in numbers:
            raise _business("isv.MOBILE_NUMBER_ILLEGAL")
        if limited is not None:
            raise _business("isv.BUSINESS_LIMIT_CONTROL", _LIMIT_MESSAGES[limited])
        return {
            "biz_id": _biz_id(),
            "request_id": _request_id(),
            "to": numbers[0],
            "phone_numbers": params["PhoneNumbers"],
            "sign_name": params["SignName"],
            "template_code": code,
            "template_param": values,
            "out_id": params.get("OutId", ""),
            "nonce": params["SignatureNonce"],
            "at": time.time(),
            "held_back": 0.0,
        }
