"""The providers a delivery may go through, in the order to try them.

SMS follows ``HERALD_SMS_ROUTES`` (by calling code, with weights) over the providers of
``HERALD_SMS_PROVIDER``; a push goes to the one provider of ``HERALD_PUSH_PROVIDER`` or, with
several, to ``push`` (each token to its own service: there is no failover between FCM and
APNs, a token belongs to one); email has one provider. Only a route with more than one provider
can fail over, so only its providers have breakers.
"""

from __future__ import annotations

from dataclasses import dataclass

from herald.config import Settings
from herald.models import CHANNELS, Channel
from herald.values.routes import Route, parse_routes, route_for

SPLIT_PUSH = "push"
"""The provider name of push with several services (``herald.channels.push_tokens``)."""


@dataclass(frozen=True)
class Choice:
    """Which provider to call now, or, with none, until when every one is skipped."""

    provider: str | None
    skipped: tuple[str, ...] = ()
    """Providers of the route passed over because their breaker is open."""
    until: float = 0.0


class Router:
    """Routes of one process's settings. Parameters: the settings. Hook: :meth:`candidates`."""

    def __init__(self, settings: Settings) -> None:
        self.routes: tuple[Route, ...] = parse_routes(settings.sms_routes, settings.providers("sms"))
        self._fixed: dict[Channel, str] = {}
        for channel in CHANNELS:
            names = settings.providers(channel)
            if channel == "push" and len(names) > 1:
                self._fixed[channel] = SPLIT_PUSH
            elif channel != "sms":
                self._fixed[channel] = names[0]
            elif len(self.routes) == 1 and len(self.routes[0].choices) == 1:
                self._fixed[channel] = self.routes[0].choices[0].name  # `*=aliyun` of aliyun,twilio

    def candidates(self, channel: Channel, key: str, address: str) -> list[str]:
        """The providers for the delivery ``key`` to ``address``, first choice first."""
        fixed = self._fixed.get(channel)
        if fixed is not None:
            return [fixed]
        return route_for(self.routes, address).order(key)

    def guarded(self) -> tuple[str, ...]:
        """The providers that have something to fail over to (a route names another after or
        before them): the ones whose breakers are watched."""
        names: list[str] = []
        for route in self.routes:
            if len(route.choices) > 1:
                names += [c.name for c in route.choices if c.name not in names]
        return tuple(names)
