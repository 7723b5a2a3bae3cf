"""Push through APNs (httpx over HTTP/2, ES256 provider tokens) against the APNs stand-in, and
`PushByToken` splitting a recipient's tokens between APNs and FCM (with the FCM stand-in).

Each test runs the provider in this process against its own FakeAPNs: no redis-server and no
worker, so every request the provider makes is seen, and a real ``Rendered`` from herald's
templates is what it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.channels.apns_push import APNsPushProvider
from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    Provider,
    ProviderError,
    RecipientOptedOut,
    RetryableError,
    SendResult,
)
from herald.channels.fcm_push import FCMPushProvider
from herald.channels.push_tokens import PushByToken
from herald.config import Settings
from herald.rendering.catalog import Catalog, load_catalog
from herald.rendering.renderer import Renderer
from tests.harness import make_reminder
from tests.providers.helpers import fresh_token
from tests.standins.apns import FakeAPNs
from tests.standins.fcm import FakeFCM

P = TypeVar("P", bound=Provider)
T = TypeVar("T")


@pytest.fixture(scope="module")
def catalog(repo_root: Path) -> Catalog:
    return load_catalog(repo_root / "templates")


@pytest.fixture
def apns() -> Iterator[FakeAPNs]:
    with FakeAPNs() as fake:
        yield fake


@pytest.fixture
def settings(apns: FakeAPNs, tmp_path: Path) -> Settings:
    return apns_settings(apns, tmp_path)


def apns_settings(fake: FakeAPNs, tmp_path: Path, **overrides: Any) -> Settings:
    """herald's settings for the stand-in: its key, team, topic, URL and certificate."""
    settings = Settings(
        push_provider="apns",
        apns_key_file=fake.write_key(tmp_path / f"AuthKey_{fake.key_id}.p8"),
        apns_key_id=fake.key_id,
        apns_team_id=fake.team_id,
        apns_topic=fake.topic,
        apns_api_base=fake.url,
        apns_ca_file=fake.cert_path,
        connect_timeout=2.0,
        provider_timeout=5.0,
    )
    return settings.model_copy(update=overrides)


def device() -> str:
    """An APNs token as herald stores it: ``apns:`` and 64 hexadecimal digits."""
    return "apns:" + uuid.uuid4().hex + uuid.uuid4().hex


def message(catalog: Catalog, settings: Settings, *tokens: str) -> Message:
    """One push delivery of an overdue notice, rendered by herald's own templates."""
    reminder = make_reminder(channels=["push"])
    reminder["to"] = {"push_tokens": list(tokens), "locale": "zh-CN", "timezone": "Asia/Shanghai"}
    renderer = Renderer(catalog, settings)
    spec = catalog.get(reminder["kind"])
    rendered = renderer.render(reminder["kind"], "push", renderer.context(reminder, spec.category))
    return Message(
        key=f"{reminder['id']}:push",
        reminder_id=reminder["id"],
        account_id=reminder["account_id"],
        kind=reminder["kind"],
        category=spec.category,
        channel="push",
        address=list(tokens),
        rendered=rendered,
    )


@contextlib.asynccontextmanager
async def started(provider: P) -> AsyncIterator[P]:
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def answer(provider: Provider, msg: Message) -> SendResult | ProviderError:
    """What the provider said: its result, or the taxonomy error it raised."""
    try:
        return await provider.send(msg)
    except ProviderError as error:
        return error


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(scenario)


def send_one(settings: Settings, msg: Message) -> SendResult | ProviderError:
    async def scenario() -> SendResult | ProviderError:
        async with started(APNsPushProvider("push", settings)) as provider:
            return await answer(provider, msg)

    return run(scenario())


# -- sent ----------------------------------------------------------------------------------


def test_notifications_are_sent_with_one_provider_token_for_many_sends(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    messages = [message(catalog, settings, device()) for _ in range(8)]

    async def scenario() -> list[SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            first = [await answer(provider, m) for m in messages[:3]]
            return first + list(await asyncio.gather(*(answer(provider, m) for m in messages[3:])))

    results = run(scenario())
    assert all(isinstance(r, SendResult) for r in results)
    assert len(apns.provider_tokens) == 1
    for msg, result in zip(messages, results, strict=True):
        assert isinstance(result, SendResult)
        token = msg.address[0]
        (record,) = apns.accepted_for(token)
        assert result.provider_ref == record["apns_id"]
        assert result.detail["sent"] == {token: record["apns_id"]}  # keyed by the stored form
        assert record["token"] == token.removeprefix("apns:")  # the URL carries the bare hex
        content = msg.rendered.content()
        assert (record["title"], record["body"]) == (content["title"], content["body"])
        assert "1,234.50" in record["body"]
        assert record["payload"]["reminder_id"] == msg.reminder_id
        assert record["payload"]["kind"] == "overdue_notice"
        assert (record["topic"], record["push_type"], record["priority"], record["expiration"]) == (
            apns.topic,
            "alert",
            "10",
            "0",
        )
        assert record["collapse_id"] == msg.reminder_id
    assert apns.requests == 8


def test_the_provider_token_is_renewed_after_50_minutes_and_not_before(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    async def scenario() -> list[SendResult | ProviderError]:
        results = []
        async with started(APNsPushProvider("push", settings)) as provider:
            results.append(await answer(provider, message(catalog, settings, device())))
            with time_machine.travel(time.time() + 49 * 60, tick=True):
                results.append(await answer(provider, message(catalog, settings, device())))
                assert len(apns.provider_tokens) == 1
            with time_machine.travel(time.time() + 51 * 60, tick=True):
                results.append(await answer(provider, message(catalog, settings, device())))
        return results

    assert all(isinstance(r, SendResult) for r in run(scenario()))
    assert len(apns.provider_tokens) == 2  # and APNs did not call the update too early (no 429)


def test_many_sends_in_flight_share_one_http2_connection(
    apns: FakeAPNs, tmp_path: Path, catalog: Catalog
) -> None:
    settings = apns_settings(apns, tmp_path, in_flight=100)
    messages = [message(catalog, settings, device()) for _ in range(300)]

    async def scenario() -> list[SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            return list(await asyncio.gather(*(answer(provider, m) for m in messages)))

    results = run(scenario())
    assert all(isinstance(r, SendResult) for r in results)
    assert len(apns.accepted) == 300
    assert apns.connections == 1
    assert 1 < apns.max_streams_seen <= 100  # streams at once; httpx opens at most 100
    assert len(apns.provider_tokens) == 1


def test_more_in_flight_than_one_connection_carries_spreads_over_more_connections(
    apns: FakeAPNs, tmp_path: Path, catalog: Catalog
) -> None:
    settings = apns_settings(apns, tmp_path, in_flight=250)
    messages = [message(catalog, settings, device()) for _ in range(300)]

    async def scenario() -> list[SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            return list(await asyncio.gather(*(answer(provider, m) for m in messages)))

    assert all(isinstance(r, SendResult) for r in run(scenario()))
    assert apns.connections == 3


# -- opted out -----------------------------------------------------------------------------


def test_an_unregistered_token_is_dropped_in_its_stored_form(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    gone, alive = device(), device()
    apns.unregister(gone)

    async def scenario() -> tuple[SendResult | ProviderError, SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            mixed = await answer(provider, message(catalog, settings, gone, alive))
            alone = await answer(provider, message(catalog, settings, gone))
            return mixed, alone

    mixed, alone = run(scenario())
    assert isinstance(mixed, SendResult)
    assert mixed.drop_addresses == (gone,)
    assert "Unregistered" in mixed.detail["failed"][gone]
    assert len(apns.accepted_for(alive)) == 1
    assert isinstance(alone, RecipientOptedOut)
    assert alone.code == "Unregistered"
    assert alone.drop_addresses == (gone,)
    assert "no longer valid for the topic from" in alone.reason()


def test_a_bad_device_token_fails_without_opting_the_token_out(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    # APNs says BadDeviceToken for every token of the other environment: a wrong
    # HERALD_APNS_API_BASE must fail deliveries, never opt every device out
    wrong_length = "apns:" + "ab" * 33  # valid at intake (64 to 200 digits); APNs wants 64
    result = send_one(settings, message(catalog, settings, wrong_length))
    assert isinstance(result, PermanentError)
    assert not isinstance(result, RecipientOptedOut)
    assert (result.code, result.drop_addresses) == ("BadDeviceToken", ())


def test_a_token_that_is_not_an_apns_token_is_never_sent(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    result = send_one(settings, message(catalog, settings, fresh_token()))
    assert isinstance(result, PermanentError)
    assert not isinstance(result, RecipientOptedOut)  # not APNs's to drop
    assert result.drop_addresses == ()
    assert apns.requests == 0


# -- the provider token --------------------------------------------------------------------


def test_an_expired_provider_token_is_replaced_once_and_the_sends_go_through(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    async def scenario() -> list[SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            first = await answer(provider, message(catalog, settings, device()))
            apns.expire_tokens()
            rest = await asyncio.gather(
                *(answer(provider, message(catalog, settings, device())) for _ in range(20))
            )
            return [first, *rest]

    results = run(scenario())
    assert all(isinstance(r, SendResult) for r in results)
    assert len(apns.provider_tokens) == 2  # one new token for the 20 refused sends
    assert len(apns.accepted) == 21
    assert apns.requests <= 1 + 2 * 20  # each refused send was sent once more, no more


def test_a_provider_token_refused_twice_is_retryable(
    apns: FakeAPNs, tmp_path: Path, catalog: Catalog
) -> None:
    settings = apns_settings(apns, tmp_path, apns_key_id="WRONGKEY00")
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, RetryableError)
    assert result.code == "InvalidProviderToken"
    assert apns.requests == 2  # the first token, then one new one


# -- retryable, ambiguous, permanent ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "after"),
    [(429, "TooManyRequests", 3.0), (503, "ServiceUnavailable", 7.0), (503, "Shutdown", None)],
)
def test_throttling_and_unavailability_are_retryable_after_retry_after(
    apns: FakeAPNs, settings: Settings, catalog: Catalog, status: int, reason: str, after: float | None
) -> None:
    apns.fail_next(1, status, reason, retry_after=after)
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, RetryableError)
    assert (result.code, result.retry_after) == (reason, after)
    assert apns.accepted == []


@pytest.mark.parametrize(("status", "reason"), [(500, "InternalServerError"), (502, ""), (504, "")])
def test_server_errors_are_ambiguous(
    apns: FakeAPNs, settings: Settings, catalog: Catalog, status: int, reason: str
) -> None:
    apns.fail_next(1, status, reason)
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, AmbiguousError)
    assert result.code == (reason or status)


def test_a_wrong_topic_is_permanent(apns: FakeAPNs, tmp_path: Path, catalog: Catalog) -> None:
    settings = apns_settings(apns, tmp_path, apns_topic="com.example.someone-else")
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, PermanentError)
    assert not isinstance(result, RecipientOptedOut)
    assert result.code == "BadTopic"


@pytest.mark.parametrize(
    ("status", "reason"), [(413, "PayloadTooLarge"), (403, "Forbidden"), (400, "BadCollapseId")]
)
def test_other_refusals_are_permanent(
    apns: FakeAPNs, settings: Settings, catalog: Catalog, status: int, reason: str
) -> None:
    apns.fail_next(1, status, reason)
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, PermanentError)
    assert not isinstance(result, RecipientOptedOut)
    assert result.code == reason


def test_no_server_listening_is_retryable(apns: FakeAPNs, settings: Settings, catalog: Catalog) -> None:
    apns.stop()
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, RetryableError)
    assert result.code == "connect"


def test_a_server_gone_between_sends_is_retryable(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    async def scenario() -> tuple[SendResult | ProviderError, SendResult | ProviderError]:
        async with started(APNsPushProvider("push", settings)) as provider:
            before = await answer(provider, message(catalog, settings, device()))
            await asyncio.to_thread(apns.stop)
            return before, await answer(provider, message(catalog, settings, device()))

    before, after = run(scenario())
    assert isinstance(before, SendResult)
    assert isinstance(after, RetryableError)  # the pooled connection said GOAWAY: nothing was taken
    assert after.code == "connect"


def test_an_untrusted_certificate_is_retryable(apns: FakeAPNs, tmp_path: Path, catalog: Catalog) -> None:
    settings = apns_settings(apns, tmp_path, apns_ca_file=None)
    result = send_one(settings, message(catalog, settings, device()))
    assert isinstance(result, RetryableError)
    assert result.code == "connect"
    assert apns.requests == 0


def test_no_answer_in_time_after_sending_is_ambiguous(
    apns: FakeAPNs, tmp_path: Path, catalog: Catalog
) -> None:
    settings = apns_settings(apns, tmp_path, provider_timeout=0.5)  # how the timeout is classed
    token = device()
    apns.hang_next(1, 10.0)
    result = send_one(settings, message(catalog, settings, token))
    assert isinstance(result, AmbiguousError)
    assert result.code == "timeout"
    assert len(apns.accepted_for(token)) == 1  # why it must be ambiguous: APNs took it


def test_a_connection_lost_after_sending_is_ambiguous(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    token = device()
    apns.hang_next(1, 30.0)

    async def scenario() -> SendResult | ProviderError:
        async with started(APNsPushProvider("push", settings)) as provider:
            pending = asyncio.create_task(answer(provider, message(catalog, settings, token)))
            await asyncio.to_thread(apns.wait_accepted, 1)
            await asyncio.to_thread(apns.stop)
            return await pending

    result = run(scenario())
    assert isinstance(result, AmbiguousError)
    assert result.code == "io"


# -- configuration ---------------------------------------------------------------------------


def test_start_names_every_missing_setting() -> None:
    provider = APNsPushProvider("push", Settings(push_provider="apns", apns_topic="cn.herald-credit.app"))
    with pytest.raises(RuntimeError) as info:
        run(provider.start())
    message_ = str(info.value)
    for name in ("HERALD_APNS_KEY_FILE", "HERALD_APNS_KEY_ID", "HERALD_APNS_TEAM_ID"):
        assert name in message_
    assert "HERALD_APNS_TOPIC" not in message_


def test_start_refuses_a_key_apns_cannot_use_and_a_url_without_tls(apns: FakeAPNs, tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.p8"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    for overrides, expected in (
        ({"apns_key_file": rsa_key}, "ES256"),
        ({"apns_key_file": tmp_path / "missing.p8"}, "HERALD_APNS_KEY_FILE"),
        ({"apns_api_base": apns.url.replace("https", "http")}, "https://"),
    ):
        provider = APNsPushProvider("push", apns_settings(apns, tmp_path, **overrides))
        with pytest.raises(RuntimeError, match=expected):
            run(provider.start())


# -- PushByToken: FCM and APNs tokens of one recipient ---------------------------------------


@pytest.fixture
def fcm() -> Iterator[FakeFCM]:
    with FakeFCM(project_id="herald-test") as fake:
        yield fake


@pytest.fixture
def both(apns: FakeAPNs, fcm: FakeFCM, tmp_path: Path) -> Settings:
    settings = apns_settings(apns, tmp_path, push_provider="fcm,apns")
    return settings.model_copy(
        update={
            "google_application_credentials": fcm.write_service_account(tmp_path / "fcm.json"),
            "fcm_project_id": fcm.project_id,
            "fcm_api_base": fcm.url,
        }
    )


def by_token(settings: Settings, *services: str) -> PushByToken:
    made: dict[str, Provider] = {}
    for service in services:
        made[service] = (APNsPushProvider if service == "apns" else FCMPushProvider)("push", settings)
    return PushByToken("push", settings, made)


def send_by_token(settings: Settings, msg: Message, *services: str) -> SendResult | ProviderError:
    async def scenario() -> SendResult | ProviderError:
        async with started(by_token(settings, *services)) as provider:
            return await answer(provider, msg)

    return run(scenario())


def test_a_mixed_token_list_is_split_by_service_and_the_answers_merged(
    apns: FakeAPNs, fcm: FakeFCM, both: Settings, catalog: Catalog
) -> None:
    android, prefixed, iphone, gone = fresh_token(), fresh_token(), device(), device()
    apns.unregister(gone)
    result = send_by_token(
        both, message(catalog, both, android, iphone, "fcm:" + prefixed, gone), "fcm", "apns"
    )

    assert isinstance(result, SendResult)
    (fcm_first,) = fcm.accepted_for(android)
    assert len(fcm.accepted_for(prefixed)) == 1  # FCM was given the token without fcm:
    (apns_record,) = apns.accepted_for(iphone)
    assert result.provider_ref == fcm_first["name"]  # the first token's service answered first
    assert result.detail["sent"] == {"fcm": fcm_first["name"], "apns": apns_record["apns_id"]}
    assert result.detail["services"]["apns"]["sent"] == {iphone: apns_record["apns_id"]}
    assert gone in result.detail["services"]["apns"]["failed"]
    assert result.drop_addresses == (gone,)
    assert fcm.requests == 2
    assert apns.requests == 2


def test_gone_fcm_tokens_are_reported_as_stored(
    apns: FakeAPNs, fcm: FakeFCM, both: Settings, catalog: Catalog
) -> None:
    gone = "fcm:" + fresh_token("unregistered")
    result = send_by_token(both, message(catalog, both, gone, device()), "fcm", "apns")
    assert isinstance(result, SendResult)
    assert result.drop_addresses == (gone,)


def test_nothing_accepted_raises_the_most_cautious_error_with_every_gone_token(
    apns: FakeAPNs, fcm: FakeFCM, both: Settings, catalog: Catalog
) -> None:
    apns_gone, apns_alive = device(), device()
    apns.unregister(apns_gone)
    fcm.fail_next(1, 503, "UNAVAILABLE", retry_after=4)
    apns.fail_next(1, 500, "InternalServerError", token=apns_alive)
    msg = message(catalog, both, fresh_token(), apns_gone, apns_alive)
    result = send_by_token(both, msg, "fcm", "apns")
    assert isinstance(result, AmbiguousError)  # APNs may have taken it: never resent blindly
    assert result.drop_addresses == (apns_gone,)

    fcm.fail_next(1, 503, "UNAVAILABLE", retry_after=4)
    apns.fail_next(1, 429, "TooManyRequests", retry_after=9)
    retry = send_by_token(both, message(catalog, both, fresh_token(), device()), "fcm", "apns")
    assert isinstance(retry, RetryableError)
    assert retry.retry_after == 9  # the longer wait of the two

    fcm_gone = "fcm:" + fresh_token("unregistered")
    every = send_by_token(both, message(catalog, both, fcm_gone, apns_gone), "fcm", "apns")
    assert isinstance(every, RecipientOptedOut)
    assert set(every.drop_addresses) == {fcm_gone, apns_gone}


def test_tokens_of_a_service_not_enabled_fail_without_dropping_them(
    apns: FakeAPNs, fcm: FakeFCM, both: Settings, catalog: Catalog
) -> None:
    settings = both.model_copy(update={"push_provider": "fcm"})
    iphone, android = device(), fresh_token()

    alone = send_by_token(settings, message(catalog, settings, iphone), "fcm")
    assert isinstance(alone, PermanentError)
    assert not isinstance(alone, RecipientOptedOut)
    assert "no provider for apns tokens: HERALD_PUSH_PROVIDER=fcm" in alone.reason()
    assert alone.drop_addresses == ()

    mixed = send_by_token(settings, message(catalog, settings, iphone, android), "fcm")
    assert isinstance(mixed, SendResult)
    assert "no provider for apns tokens" in mixed.detail["failed"]["apns"]
    assert len(fcm.accepted_for(android)) == 1
    assert apns.requests == 0


def test_a_notification_is_kept_for_an_offline_device_until_its_reminder_expires(
    apns: FakeAPNs, settings: Settings, catalog: Catalog
) -> None:
    token = "apns:" + "c" * 64
    expires = 1_900_000_000.0
    result = send_one(settings, dataclasses.replace(message(catalog, settings, token), expires_at=expires))
    assert isinstance(result, SendResult)
    (record,) = apns.accepted_for(token)
    assert record["expiration"] == "1900000000"


def test_fcm_alone_sends_an_fcm_prefixed_token_without_its_prefix(
    fcm: FakeFCM, both: Settings, catalog: Catalog
) -> None:
    token = fresh_token()

    async def scenario() -> SendResult | ProviderError:
        async with started(FCMPushProvider("push", both)) as provider:
            return await answer(provider, message(catalog, both, "fcm:" + token))

    result = run(scenario())
    assert isinstance(result, SendResult)
    assert len(fcm.accepted_for(token)) == 1
