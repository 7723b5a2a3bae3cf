"""The durable ledger: every delivery outcome, hold change and opt-out change, in a SQL database.

Redis keeps the recent past in three streams (``herald:events``, ``herald:holds:audit``,
``herald:optout:audit``); ``herald ledger`` copies them, in order, into SQL tables (SQLite or
PostgreSQL, through SQLAlchemy) and trims ``herald:events`` up to what the ledger has. The
ledger is what ``herald history`` and the history API read (with the not-yet-copied tail of the
streams), and what ``herald suppress rebuild`` replays when Redis lost its holds and opt-outs.

Modules: ``db`` (URLs, engines, dialect-specific inserts), ``schema`` (the tables), ``writer``
(the copier, retention), ``reader`` (queries for history), ``rebuild`` (holds, marks and
opt-outs back into Redis), ``initcheck`` (whether ``herald suppress init`` may mark a Redis).
"""
