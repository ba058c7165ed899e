"""The reasons a waiting job is not executing, decided from one :class:`Situation`.

Each check looks at one thing and returns the reasons it finds (usually none or one);
:data:`CHECKS` runs them in the order an operator reads them: the job's own time and
attempts, its queue's pause, the nodes that run it, then each limit from the narrowest
(this node) to the widest (the partition's turn), then its cron entry. Every check runs:
a job held by a paused queue may also sit behind a full global limit, and resuming the
queue alone would not start it. A later kind of wait (a workflow's dependencies) is one
more check in this tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import quote, urlencode

from ..common import HOST, NATIVE, NextPath, ago, utc
from ..principal import shown_principal, shown_stored
from .gather import AHEAD_CAP, PARTITIONS_CAP, Producer, Situation
from .model import Evidence, Reason

__all__ = ["CHECKS", "expected_start"]

type Check = Callable[[Situation], list[Reason]]
SHOW_NODES = 5


def _at(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "unknown"
    return f"{value:%Y-%m-%d %H:%M:%S} UTC ({ago(value, now)})"


def _href(path: str, **query: str) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def _nodes(producers: Sequence[Producer], say: Callable[[Producer], str]) -> str:
    shown = [say(p) for p in producers[:SHOW_NODES]]
    more = len(producers) - SHOW_NODES
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _capped(n: int, cap: int) -> str:
    return f"{cap:,}+" if n >= cap else f"{n:,}"


def _queue_paths(s: Situation, label: str) -> list[NextPath]:
    return [NextPath(label, NATIVE, "/queues")]


def _executing_path(s: Situation) -> NextPath:
    return NextPath(
        "Jobs executing in queue " + s.show("queue", s.queue, "queue"),
        NATIVE,
        _href("/jobs", state="executing", queue=s.queue),
    )


def attempts_exhausted(s: Situation) -> list[Reason]:
    attempt, most = int(s.job["attempt"]), int(s.job["max_attempts"])
    if s.state != "available" or attempt < most:
        return []
    return [
        Reason(
            "attempts_exhausted",
            "Its attempts are used up: no fetch claims a job whose attempt has reached "
            "max_attempts",
            [Evidence("Attempts", f"{attempt} of {most}")],
            [
                NextPath("Cancel or discard job", NATIVE, f"/jobs/{s.job['id']}"),
                NextPath(
                    "Raise the worker's max_attempts",
                    HOST,
                    note="Worker options are the host's code.",
                ),
            ],
        )
    ]


def scheduled(s: Situation) -> list[Reason]:
    if s.state not in ("scheduled", "retryable"):
        return []
    at = utc(s.job["scheduled_at"])
    run_now = NextPath("Retry job (runs it now)", NATIVE, f"/jobs/{s.job['id']}")
    evidence = [Evidence("Scheduled at", _at(at, s.now))]
    if s.state == "retryable":
        evidence.insert(
            0, Evidence("Attempts", f"{s.job['attempt']} of {s.job['max_attempts']} failed")
        )
    if at is not None and at > s.now:
        title = (
            "Its next attempt is scheduled in the future"
            if s.state == "retryable"
            else "It is scheduled to run in the future"
        )
        return [Reason("scheduled", title, evidence, [run_now])]
    return [
        Reason(
            "due",
            "It is due and waits to be staged: every node running the queue moves due jobs "
            "to available about once a second",
            evidence,
            [run_now],
        )
    ]


def queue_paused(s: Situation) -> list[Reason]:
    live = [p for p in s.producers if p.live]
    decision = s.decision
    queue = s.show("queue", s.queue, "queue")
    resume = _queue_paths(s, f"Resume queue {queue} (Queues page)")
    if decision is not None and decision["paused"]:
        by = shown_stored(s.display, decision, "changed_by", resource=s.resource)
        reason = s.display.optional(
            "reason", decision["reason"], resource=s.resource, field="reason"
        )
        evidence = [
            Evidence("Paused by", str(by) if by else "an unknown actor"),
            Evidence("Why", reason or "no reason recorded"),
            Evidence("Since", _at(utc(decision["updated_at"]), s.now)),
            Evidence("Until", "no end was set: it stays paused until resumed"),
        ]
        fetching = [p for p in live if not p.paused]
        if fetching:
            evidence.append(Evidence("Still fetching on", _nodes(fetching, lambda p: p.shown)))
        return [Reason("queue_paused", f"Queue {queue} is paused", evidence, resume)]
    if live and all(p.paused for p in live):
        why = (
            "the stored decision is to run it; the nodes have not applied it yet"
            if decision is not None
            else "no decision is stored: it was paused outside Powertools"
        )
        return [
            Reason(
                "queue_paused",
                f"Queue {queue} is paused on every node running it",
                [
                    Evidence("Paused on", _nodes(live, lambda p: p.shown)),
                    Evidence("Decision", why),
                    Evidence("Until", "no end was set: it stays paused until resumed"),
                ],
                resume,
            )
        ]
    return []


def nodes(s: Situation) -> list[Reason]:
    queue = s.show("queue", s.queue, "queue")
    live = [p for p in s.producers if p.live]
    if not live:
        evidence = [Evidence("Producers", "no node has a live producer for this queue")]
        gone = sorted((p for p in s.producers if not p.live), key=lambda p: p.age_seconds)
        if gone:
            evidence.append(
                Evidence(
                    "Last heard from",
                    _nodes(gone, lambda p: f"{p.shown} {p.age_seconds:,} s ago"),
                )
            )
        return [
            Reason(
                "no_node",
                f"No node runs queue {queue}",
                evidence,
                [
                    NextPath(
                        f"Start a worker that runs queue {queue}",
                        HOST,
                        note="Worker processes and their queues are the host's deployment.",
                    )
                ],
            )
        ]
    if any(p.runtime for p in live):
        return []
    return [
        Reason(
            "no_runtime",
            f"No node runs queue {queue} with the Powertools runtime: oban fetches it, but "
            "the operator's queue decisions and the limits are not applied there",
            [Evidence("Running it without the runtime", _nodes(live, lambda p: p.shown))],
            [
                NextPath(
                    "Give each worker the runtime: Oban(..., **powertools.oban_options())",
                    HOST,
                    note="How workers build their Oban instance is the host's code.",
                )
            ],
            blocking=False,
        )
    ]


def local_limit(s: Situation) -> list[Reason]:
    fetching = [p for p in s.producers if p.live and not p.paused and p.limit is not None]
    if not fetching or any(p.running < (p.limit or 0) for p in fetching):
        return []
    queue = s.show("queue", s.queue, "queue")
    return [
        Reason(
            "local_limit",
            f"Every node running queue {queue} is at its local limit",
            [
                Evidence(
                    "Running per node",
                    _nodes(fetching, lambda p: f"{p.shown} {p.running} of {p.limit}"),
                )
            ],
            [*_queue_paths(s, f"Scale queue {queue} (Queues page)"), _executing_path(s)],
        )
    ]


def _limit_source(s: Situation) -> Evidence:
    stored = s.stored
    assert stored is not None
    if stored.decided:
        by = shown_principal(
            s.display,
            stored.decided_by_id,
            stored.decided_by_label,
            resource=s.resource,
            id_field="decided_by_id",
            label_field="decided_by_label",
        )
        why = s.display.optional("reason", stored.reason, resource=s.resource, field="reason")
        return Evidence(
            "Set by",
            f"{by or 'an operator'} {ago(utc(stored.decided_at), s.now)}"
            + (f": {why}" if why else ""),
        )
    node = s.display.optional("node", stored.declared_by, resource=s.resource, field="declared_by")
    return Evidence("Set by", f"the code's declaration (node {node or 'unknown'})")


def global_limit(s: Situation) -> list[Reason]:
    g = s.stored.limits.global_limit if s.stored else None
    use = s.global_use
    if g is None or use is None or use.running < g.allowed:
        return []
    where = f"in its partition ({s.shown_partition()})" if g.partition else "across all nodes"
    ids = ", ".join(str(i) for i in use.running_ids)
    if use.running > len(use.running_ids):
        ids += f" and {use.running - len(use.running_ids):,} more"
    return [
        Reason(
            "global_limit",
            f"The global limit is full: {use.running} of {g.allowed} running {where}",
            [
                Evidence("Running", f"{use.running} of {g.allowed} {where}"),
                Evidence("Executing jobs", ids or "none"),
                _limit_source(s),
            ],
            [
                *_queue_paths(s, "Change the queue's limits (Queues page)"),
                _executing_path(s),
            ],
        )
    ]


def rate_limit(s: Situation) -> list[Reason]:
    r = s.stored.limits.rate_limit if s.stored else None
    use = s.rate_use
    if r is None or use is None or use.started < r.allowed:
        return []
    where = f"its partition ({s.shown_partition()})" if r.partition else "the queue"
    resets = utc(use.window_resets_at)
    return [
        Reason(
            "rate_limit",
            f"The rate limit is spent for {where}: {use.started} of {r.allowed} starts in "
            f"the last {r.period} s",
            [
                Evidence("Starts in window", f"{use.started} of {r.allowed} per {r.period} s"),
                Evidence("Window resets at", _at(resets, s.now)),
                _limit_source(s),
            ],
            _queue_paths(s, "Change the queue's limits (Queues page)"),
        )
    ]


def partition(s: Situation) -> list[Reason]:
    if not s.partitioned or s.state != "available":
        return []
    assert s.stored is not None and s.stored.limits.partition is not None
    by = s.stored.limits.partition.describe()
    if s.key is None:
        return [
            Reason(
                "partition_unkeyed",
                "It has no partition key in a partitioned queue: the limited fetch takes "
                "only keyed jobs, and re-keying the queue's jobs is pending",
                [Evidence("Partitioned by", by), Evidence("Its key", "none")],
                [
                    NextPath(
                        "Restart a worker running the queue: it re-keys the queue's jobs "
                        "when it starts",
                        HOST,
                        note="Worker processes are the host's deployment.",
                    )
                ],
            )
        ]
    ahead = s.partitions_ahead or 0
    g, r = s.stored.limits.global_limit, s.stored.limits.rate_limit
    full = (g is not None and s.global_use is not None and s.global_use.running >= g.allowed) or (
        r is not None and s.rate_use is not None and s.rate_use.started >= r.allowed
    )
    if full or ahead == 0:
        return []
    turn = next((u.turn for u in (s.global_use, s.rate_use) if u is not None), None)
    return [
        Reason(
            "partition_turn",
            "Its partition waits its turn: each fetch serves the partitions with available "
            "jobs round-robin, one job each per round in key order from the one served last, "
            "so it gets a turn within one round",
            [
                Evidence("Its partition", s.shown_partition()),
                Evidence("Partitioned by", by),
                Evidence(
                    "Partitions served before it this round", _capped(ahead, 2 * PARTITIONS_CAP)
                ),
                Evidence(
                    "Served last",
                    "none yet" if turn is None else s.shown_partition(turn),
                ),
            ],
            [
                NextPath(
                    "Queue " + s.show("queue", s.queue, "queue"),
                    NATIVE,
                    _href("/forensics", resource_type="queue", resource_id=s.queue),
                    note="Nothing to do: the round-robin reaches it within one round.",
                )
            ],
        )
    ]


def cron_entry(s: Situation) -> list[Reason]:
    entry = s.cron
    if entry is None or not entry["paused"]:
        return []
    name = s.show("cron_entry", entry["name"], "cron_name")
    by = shown_stored(s.display, entry, "paused_by", resource=s.resource)
    why = s.display.optional(
        "reason", entry["paused_reason"], resource=s.resource, field="paused_reason"
    )
    until = utc(entry["pause_expires_at"])
    return [
        Reason(
            "cron_entry_paused",
            f"Its cron entry {name} is paused: that stops new runs, not this job, which "
            "was enqueued already",
            [
                Evidence("Paused by", str(by) if by else "an unknown actor"),
                Evidence("Why", why or "no reason recorded"),
                Evidence("Since", _at(utc(entry["paused_at"]), s.now)),
                Evidence("Until", _at(until, s.now) if until else "until resumed"),
            ],
            [NextPath(f"Cron entry {name}", NATIVE, f"/cron/{entry['name']}")],
            blocking=False,
        )
    ]


def chain_link(s: Situation) -> list[Reason]:
    """A chain link waits for the link before it (its chain's head) to finish; a held
    chain waits for an operator's resume_chain past its failed link."""
    c = s.chain
    if c is None or s.state != "suspended" or c["outcome"] is not None:
        return []
    key = s.show("chain_key", c["chain_key"], "chain")
    chain_path = _href("/chains/" + quote(str(c["chain_key"]), safe=""))
    head = f"link {c['head_seq']} (job {c['head_job_id']}, state {c['head_job_state']})"
    evidence = [
        Evidence("Chain", key),
        Evidence("Position", f"link {c['seq']}"),
        Evidence("Chain state", str(c["chain_state"])),
    ]
    if c["chain_state"] == "held":
        return [
            Reason(
                "chain_held",
                f"Chain {key} is held at its failed {head}: the links after it wait until "
                "an operator resumes the chain",
                evidence,
                [
                    NextPath("Resume chain (releases the next link)", NATIVE, chain_path),
                    NextPath("Open the failed link", NATIVE, f"/jobs/{c['head_job_id']}"),
                ],
            )
        ]
    return [
        Reason(
            "chain_waiting",
            f"It is waiting for {head} of chain {key}: links of one chain run one after "
            "another, in insertion order",
            evidence,
            [
                NextPath("Open the link it waits for", NATIVE, f"/jobs/{c['head_job_id']}"),
                NextPath("Open the chain", NATIVE, chain_path),
            ],
        )
    ]


CHECKS: tuple[Check, ...] = (
    chain_link,
    attempts_exhausted,
    scheduled,
    queue_paused,
    nodes,
    local_limit,
    global_limit,
    rate_limit,
    partition,
    cron_entry,
)


def expected_start(s: Situation) -> str:
    """When a job nothing holds back should start: at the next fetch, behind the jobs
    ahead of it (counted up to a cap), given the slots free now."""
    queue = s.show("queue", s.queue, "queue")
    fetching = [p for p in s.producers if p.live and not p.paused]
    free = sum(max(0, (p.limit or 0) - p.running) for p in fetching)
    g = s.stored.limits.global_limit if s.stored else None
    if g is not None and s.global_use is not None:
        free = min(free, max(0, g.allowed - s.global_use.running))
    ahead = s.jobs_ahead or 0
    slots = f"{free} slot is free now" if free == 1 else f"{free} slots are free now"
    scope = "in its partition" if s.partitioned else f"in queue {queue}"
    if ahead == 0:
        return (
            f"at the next fetch of queue {queue} (within about a second): no job is ahead "
            f"of it {scope}, and {slots}"
        )
    return (
        f"once the {_capped(ahead, AHEAD_CAP)} job{'' if ahead == 1 else 's'} ahead of it "
        f"{scope} (by priority, then scheduled time) are claimed; {slots}"
    )
