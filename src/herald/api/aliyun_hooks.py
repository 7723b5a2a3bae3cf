"""Aliyun SMS's delivery reports: the SmsReport HTTP batch push, recorded as receipts.

Aliyun POSTs a JSON array of reports (``phone_number``, ``send_time``, ``report_time``,
``success``, ``err_code``, ``err_msg``, ``sms_size``, ``biz_id``, ``out_id``) to the URL set in
its console, and signs nothing. So the URL carries a secret: give Aliyun
``<HERALD_PUBLIC_URL>/v1/providers/aliyun/reports?token=<HERALD_ALIYUN_REPORT_TOKEN>``. A push
without that token is refused with 403 and changes nothing; with no token configured the route
answers 404.

Each report is matched to its delivery by ``biz_id`` (the ``BizId`` ``SendSms`` answered, which
herald keeps as the delivery's provider reference) and recorded as Twilio's status callbacks are:
``success`` true is ``delivered``, false is ``undelivered`` with ``err_code`` and ``err_msg``.
Aliyun counts a push received only on HTTP 200 with a numeric ``code``, and pushes again (after
1, 5 and 10 minutes) otherwise; so the answer is ``{"code": 0, ...}`` only once every report is
recorded, and 503 when Redis fails part-way (recording a report twice is harmless).

The token would otherwise be written to the access log with the path: `HideReportToken` cuts it
off uvicorn's access lines, installed once when this module is imported.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from herald.api.deps import redis_of, settings_of
from herald.config import Settings
from herald.display.masking import scrub
from herald.state import store

log = logging.getLogger("herald.api.aliyun")
PREFIX = "/v1/providers/aliyun"
REPORTS_PATH = PREFIX + "/reports"
router = APIRouter(prefix=PREFIX, tags=["provider webhooks"])

RECEIVED = {"code": 0, "msg": "接收成功"}
"""The answer Aliyun's documentation asks for (it checks only that ``code`` is a number)."""
MAX_REASON = 300


class HideReportToken(logging.Filter):
    """Access-log lines show the report path without its token: the token lets anyone record
    receipts. Hook: ``filter`` rewrites the path of uvicorn's access record (its third argument)
    and lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Cut the query off a report path."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, found, _ = args[2].partition("?")
            if found and path == REPORTS_PATH:
                record.args = (*args[:2], path + "?token=…", *args[3:])
        return True


def _install_token_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideReportToken) for f in access.filters):
        access.addFilter(HideReportToken())


_install_token_filter()


@dataclass(frozen=True)
class Report:
    """One SmsReport entry, as far as herald uses it."""

    biz_id: str
    success: bool
    err_code: str
    err_msg: str

    def code(self) -> str:
        """The receipt's code: empty when delivered, else ``err_code err_msg`` (personal data
        masked, bounded)."""
        if self.success:
            return ""
        text = " ".join(f"{self.err_code} {self.err_msg}".split())
        return scrub(text)[:MAX_REASON]


def parse_reports(raw: bytes) -> list[Report]:
    """The documented JSON array of reports; ValueError naming the first problem."""
    try:
        body: Any = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(body, list):
        raise ValueError("the body must be a JSON array of reports")
    reports = []
    for i, item in enumerate(body):
        if not isinstance(item, dict):
            raise ValueError(f"report {i}: must be a JSON object")
        biz_id = item.get("biz_id")
        if not isinstance(biz_id, str) or not biz_id.strip():
            raise ValueError(f"report {i}: biz_id must be a non-empty string")
        success = item.get("success")
        if not isinstance(success, bool):
            raise ValueError(f"report {i}: success must be true or false")
        texts = {}
        for name in ("err_code", "err_msg"):
            value = item.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"report {i}: {name} must be a string")
            texts[name] = value or ""
        reports.append(Report(biz_id.strip(), success, texts["err_code"], texts["err_msg"]))
    return reports


async def pushed_reports(
    request: Request,
    settings: Annotated[Settings, Depends(settings_of)],
    token: Annotated[str | None, Query(description="HERALD_ALIYUN_REPORT_TOKEN")] = None,
) -> list[Report]:
    """The pushed reports, if and only if the URL carries our token and the body is well formed."""
    if settings.aliyun_report_token is None:
        raise HTTPException(404, "Aliyun reports are not configured (HERALD_ALIYUN_REPORT_TOKEN)")
    expected = settings.aliyun_report_token.get_secret_value().encode()
    if token is None or not hmac.compare_digest(token.encode(), expected):
        log.warning("refused an Aliyun report push with a missing or wrong token")
        raise HTTPException(403, "missing or wrong token")
    try:
        return parse_reports(await request.body())
    except ValueError as exc:
        raise HTTPException(400, f"not an SmsReport batch: {exc}") from None


@router.post(
    "/reports",
    summary="Aliyun SMS delivery reports (SmsReport HTTP batch push)",
    responses={
        400: {"description": "The body is not a JSON array of SmsReport entries."},
        403: {"description": "The URL's token is missing or wrong."},
        404: {"description": "Reports are not configured (HERALD_ALIYUN_REPORT_TOKEN)."},
        503: {"description": "Redis failed part-way; Aliyun pushes the batch again."},
    },
)
def reports(
    request: Request,
    pushed: Annotated[list[Report], Depends(pushed_reports)],
    client: Annotated[redis.Redis, Depends(redis_of)],
) -> dict[str, Any]:
    """Record ``delivered`` / ``undelivered`` on the sent delivery each report names by BizId."""
    recorded = unknown = not_sent = 0
    try:
        pipe = client.pipeline(transaction=False)
        for report in pushed:
            pipe.get(store.provider_ref_key("aliyun", report.biz_id))
        keys = pipe.execute() if pushed else []
        for report, key in zip(pushed, keys, strict=True):
            if key is None:
                unknown += 1
                continue
            delivery = store.text(key)
            receipt = "delivered" if report.success else "undelivered"
            if request.app.state.receipts.record(delivery, receipt, report.code()):
                recorded += 1
            else:
                not_sent += 1
    except redis.RedisError as exc:
        log.warning("Aliyun reports not all recorded (%s): Aliyun will push them again", type(exc).__name__)
        raise HTTPException(
            503, "Redis is not reachable; the reports were not all recorded", headers={"Retry-After": "60"}
        ) from None
    if unknown or not_sent:
        log.info(
            "Aliyun reports: %d recorded, %d unknown BizId, %d not a sent delivery",
            recorded,
            unknown,
            not_sent,
        )
    return {**RECEIVED, "recorded": recorded, "unknown": unknown, "not_sent": not_sent}
