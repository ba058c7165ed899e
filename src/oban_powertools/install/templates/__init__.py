"""Starter modules that ``oban-powertools install`` copies into a host package.

They are real Python so the linter and type checker keep them honest; the library never
imports them. Their relative imports resolve inside the host package they are copied to.
"""
