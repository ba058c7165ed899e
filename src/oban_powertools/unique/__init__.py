"""Unique (idempotent) enqueue: the ``unique`` option, the key a job is unique by.

A unique job carries its key in ``meta.unique_key`` while it is in one of its unique
states; a unique index over that key makes a second insert of the same work conflict in
the database, whatever the race (:mod:`oban_powertools.runtime.inserter`). A trigger
drops the key when the job leaves its unique states, so a later insert goes through.
"""
