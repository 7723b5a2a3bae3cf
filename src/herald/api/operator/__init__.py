"""The operator web page at ``/operator``: holds, history, audit, in-doubt deliveries, CSV import.

Server-rendered (Jinja2, autoescaped) with plain HTML forms and one small script for upload
progress; nothing is fetched from another site. Sign-in is by an API key with the
``operator`` scope; sessions are signed cookies (HERALD_SECRET_KEY) and every form carries a
CSRF token. See :mod:`herald.api.operator.session`, :mod:`herald.api.operator.page` (the gates
every route passes) and :mod:`herald.api.operator.routes` (the page's areas, one module each).
"""

from herald.api.operator.routes import router

__all__ = ["router"]
