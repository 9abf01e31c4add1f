"""Use cases; each owns its transaction boundary (``db.transaction()``)."""
