"""Queue limiters: ``global_limit``, ``rate_limit`` and their partitions.

The options (:mod:`.options`), the sliding-window arithmetic (:mod:`.window`), the
round-robin share between partitions (:mod:`.fairshare`) and the stored, operator-adjustable
limits (:mod:`.store`) are plain domain code; the fetch that enforces them runs inside
each oban node (:mod:`oban_powertools.runtime.limiter`).
"""
