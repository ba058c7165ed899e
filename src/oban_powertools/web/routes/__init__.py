"""One routes module per page family; each exposes ``routes``."""
