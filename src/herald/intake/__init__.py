"""Intake: what upstream services call to hand herald reminders.

Validation (the wire format's rules, the fields the templates need), storing each reminder once
with its deliveries (the producer), publishing their keys to the lanes (fan-out), cancellation,
and reading a reminder's state back. May import ``herald`` core (config, clock, models),
``rendering``, ``state`` and ``holds``; never ``delivery``, ``ops``, ``api`` or ``cli``.
"""
