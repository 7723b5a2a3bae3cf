"""herald."""
