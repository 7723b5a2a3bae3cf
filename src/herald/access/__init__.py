"""Access: API keys (hashed, scoped) for the HTTP API and the operator page. May import core and
``state``.
"""
