"""Batches: a set of jobs whose callbacks are enqueued, exactly once each, when all of
them finished.

The domain side (pure): :class:`Batch` collects the jobs and resolves its callback
workers at build time. The runtime side inserts the batch with its jobs (the insert
hook), counts each job's finish in the transaction that acks it and, in the ack that
finishes the batch, writes the callbacks' outbox rows and jobs
(:mod:`oban_powertools.runtime.batch_release`). See docs/chains-and-batches.md.
"""

from .model import (
    BATCH_KEY,
    CALLBACK_KEY,
    CALLBACK_KINDS,
    CALLBACK_OF_KEY,
    EXTRA_KEY,
    Batch,
    BatchPlan,
    CallbackSpec,
    callback_batch_id,
    callbacks_due,
)

__all__ = [
    "BATCH_KEY",
    "CALLBACK_KEY",
    "CALLBACK_KINDS",
    "CALLBACK_OF_KEY",
    "EXTRA_KEY",
    "Batch",
    "BatchPlan",
    "CallbackSpec",
    "callback_batch_id",
    "callbacks_due",
]
