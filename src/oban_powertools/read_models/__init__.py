"""What pages show: plain async functions over the database, testable without HTTP.

Each takes a :class:`~oban_powertools.display.Display` and returns dataclasses whose
values have already been through the host's display policy.
"""
