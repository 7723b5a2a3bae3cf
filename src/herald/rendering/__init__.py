"""Rendering: the message templates and what is made from them.

The template catalog (kinds, categories, locales), the sandbox, the renderer and its filters,
the fields a kind's templates need, SMS segment counting, the links in messages, and the sample
reminders. May import core only.
"""
