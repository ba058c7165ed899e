"""Chains: jobs sharing a chain key run strictly one after another, in insertion order,
across nodes.

The domain side (pure): :func:`parse_chain` reads the ``chain=`` option given to
``Worker.new(args, chain="account:42")`` (or ``chain={"key": ..., "on_failure":
"skip"}``, or :func:`chained`). The runtime side inserts the link (the insert hook:
available when its chain has no unfinished link, else suspended) and releases the next
link in the transaction that acks the previous one (:mod:`oban_powertools.runtime.
chain_release`). See docs/chains-and-batches.md.
"""

from .options import CHAIN_KEY, EXTRA_KEY, ON_FAILURE, SEQ_KEY, ChainSpec, chained, parse_chain

__all__ = [
    "CHAIN_KEY",
    "EXTRA_KEY",
    "ON_FAILURE",
    "SEQ_KEY",
    "ChainSpec",
    "chained",
    "parse_chain",
]
