"""Provider lists and SMS routes: how HERALD_SMS_PROVIDER and HERALD_SMS_ROUTES are read, and
the refusals that name the setting."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from herald.config import Settings, describe_settings_error
from herald.routing.router import SPLIT_PUSH, Router
from herald.values.routes import Choice, parse_providers, parse_routes, route_for


def test_a_provider_list_keeps_its_order_and_refuses_unknown_or_repeated_names() -> None:
    assert parse_providers("sms", " Aliyun , twilio ") == ("aliyun", "twilio")
    with pytest.raises(ValueError, match="unknown sms provider 'smtp'"):
        parse_providers("sms", "aliyun,smtp")
    with pytest.raises(ValueError, match="twice"):
        parse_providers("sms", "twilio,twilio")
    with pytest.raises(ValueError, match="outbox"):
        parse_providers("sms", "outbox,twilio")
    with pytest.raises(ValueError, match="names no provider"):
        parse_providers("push", " , ")


def test_the_longest_calling_code_wins_and_star_takes_the_rest() -> None:
    routes = parse_routes("86=aliyun,twilio;852=twilio;*=twilio", ("aliyun", "twilio"))
    assert route_for(routes, "+8613800138000").choices == (Choice("aliyun"), Choice("twilio"))
    assert route_for(routes, "+85291234567").choices == (Choice("twilio"),)
    assert route_for(routes, "+14155550100").choices == (Choice("twilio"),)


def test_without_a_star_rule_the_provider_list_is_the_route_of_the_rest() -> None:
    routes = parse_routes("86=aliyun", ("twilio", "aliyun"))
    assert route_for(routes, "+447700900123").order("k") == ["twilio", "aliyun"]
    assert route_for(routes, "+8613800138000").order("k") == ["aliyun"]


def test_weights_split_first_choices_steadily_and_keep_the_rest_for_failover() -> None:
    (route,) = [r for r in parse_routes("*=twilio:3,aliyun:1", ("twilio", "aliyun")) if r.prefix == ""]
    firsts = Counter(route.order(f"r{i}:sms")[0] for i in range(4000))
    assert 2700 < firsts["twilio"] < 3300  # 3 to 1
    assert route.order("r7:sms") == route.order("r7:sms")  # a retry draws the same
    assert sorted(route.order("r7:sms")) == ["aliyun", "twilio"]  # the other follows, for failover


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("86=aliyun,apns", "'apns' is not in HERALD_SMS_PROVIDER"),
        ("86:aliyun", "write a calling code"),
        ("+86=aliyun;86=twilio", "86 has a rule already"),
        ("86=aliyun:0", "weight of aliyun"),
        ("86=aliyun,aliyun", "names a provider twice"),
    ],
)
def test_a_wrong_rule_is_refused_naming_the_setting_and_the_rule(rules: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(sms_provider="aliyun,twilio", sms_routes=rules)
    described = describe_settings_error(caught.value)
    assert described.startswith("HERALD_SMS_ROUTES") or "HERALD_SMS_ROUTES" in described
    assert message in described


def test_a_wrong_provider_name_is_refused_naming_its_setting() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(push_provider="fcm,twilio")
    assert describe_settings_error(caught.value).startswith("HERALD_PUSH_PROVIDER: unknown push provider")
    with pytest.raises(ValidationError, match="`outbox` stands alone"):
        Settings(email_provider="smtp,outbox")


def test_only_providers_with_somewhere_to_fail_over_to_are_guarded() -> None:
    router = Router(Settings(sms_provider="aliyun,twilio", sms_routes="86=aliyun,twilio;*=twilio"))
    assert router.guarded() == ("aliyun", "twilio")
    assert router.candidates("sms", "r1:sms", "+8613800138000") == ["aliyun", "twilio"]
    assert router.candidates("sms", "r1:sms", "+14155550100") == ["twilio"]
    assert Router(Settings(sms_provider="twilio")).guarded() == ()
    assert Router(Settings(sms_provider="twilio")).candidates("sms", "r1:sms", "+8613800138000") == ["twilio"]


def test_a_single_star_rule_sends_every_number_to_the_provider_it_names() -> None:
    router = Router(Settings(sms_provider="twilio,aliyun", sms_routes="*=aliyun"))
    assert router.candidates("sms", "r1:sms", "+14155550100") == ["aliyun"]
    assert router.guarded() == ()


def test_push_with_two_services_goes_to_the_token_splitter() -> None:
    router = Router(Settings(push_provider="fcm,apns"))
    assert router.candidates("push", "r1:push", "apns:" + "a" * 64) == [SPLIT_PUSH]
    assert Router(Settings(push_provider="apns")).candidates("push", "r1:push", "x") == ["apns"]
