"""Twilio's webhooks: message status callbacks (receipts) and inbound messages (STOP / START).

Both are form posts signed in ``X-Twilio-Signature`` (HMAC-SHA1 over the URL Twilio called and
the sorted parameters, with the auth token); anything not signed by our account is refused
with 403 and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from twilio.request_validator import RequestValidator

from herald.api.deps import public_url_of, redis_of, settings_of
from herald.config import Settings
from herald.display.masking import mask_phone
from herald.holds.optouts import KEYWORD_REFUSED, OptOuts, keyword_action
from herald.state import store

log = logging.getLogger("herald.api.twilio")
router = APIRouter(prefix="/v1/providers/twilio", tags=["provider webhooks"])

RECEIPTS = {"delivered": "delivered", "undelivered": "undelivered", "failed": "undelivered"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def signed_form(
    request: Request, settings: Annotated[Settings, Depends(settings_of)]
) -> dict[str, str]:
    """The posted form, if and only if Twilio signed it with our auth token."""
    if settings.twilio_auth_token is None:
        raise HTTPException(403, "Twilio webhooks are not configured (TWILIO_AUTH_TOKEN)")
    form = {k: str(v) for k, v in (await request.form()).items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not signature or not validator.validate(public_url_of(request, settings), form, signature):
        log.warning("refused a Twilio webhook with a missing or invalid signature")
        raise HTTPException(403, "invalid X-Twilio-Signature")
    return form


@router.post("/status", summary="Twilio message status callback (delivery receipts)")
def status_callback(
    request: Request,
    form: Annotated[dict[str, str], Depends(signed_form)],
    client: Annotated[redis.Redis, Depends(redis_of)],
) -> dict[str, str]:
    """Record ``delivered`` / ``undelivered`` (with the error code) on the sent delivery."""
    sid = form.get("MessageSid", "")
    receipt = RECEIPTS.get(form.get("MessageStatus", form.get("SmsStatus", "")))
    if not sid or receipt is None:
        return {"result": "ignored"}
    key = client.get(store.provider_ref_key("twilio", sid))
    if key is None:
        return {"result": "unknown message"}
    delivery = key.decode() if isinstance(key, bytes) else str(key)
    done = request.app.state.receipts.record(delivery, receipt, form.get("ErrorCode", ""))
    return {"result": "recorded" if done else "not a sent delivery", "delivery": delivery}


@router.post("/inbound", summary="Twilio inbound message webhook (opt-out and opt-in keywords)")
def inbound(
    form: Annotated[dict[str, str], Depends(signed_form)],
    client: Annotated[redis.Redis, Depends(redis_of)],
) -> Response:
    """STOP, UNSUBSCRIBE, 退订, TD ... opt the sender out of SMS; START, UNSTOP ... opt back in,
    but only out of an opt-out a keyword (or the provider) made."""
    sender = form.get("From", "")
    action = keyword_action(form.get("Body", ""))
    if sender and action is not None:
        optouts = OptOuts(client)
        try:
            changed = optouts.change(
                "sms", sender, "add" if action == "out" else "remove", source="sms-keyword", by=sender
            )
            if changed == KEYWORD_REFUSED:
                log.warning(
                    "inbound opt-in keyword from %s left the opt-out in force: an operator or an "
                    "unsubscribe link made it, and only an operator may lift it",
                    mask_phone(sender),
                )
            else:
                log.info("inbound %s keyword from %s", action, mask_phone(sender))
        except ValueError:
            log.warning("inbound keyword from an unusable number %s", mask_phone(sender))
    return Response(EMPTY_TWIML, media_type="text/xml")
