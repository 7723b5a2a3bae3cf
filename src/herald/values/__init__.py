"""Values: what the text of a setting means, read without the settings.

Rates (``30/s``), frequency caps (``sms.collection=2/24h``), Redis and Sentinel URLs, ledger
database URLs. ``herald.config`` checks every setting with them, and the modules that use a
value parse it with them, so neither imports the other. Imports nothing of herald.
"""
