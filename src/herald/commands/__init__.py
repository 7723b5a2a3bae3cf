"""Sub-commands of ``herald``, one module per group."""
