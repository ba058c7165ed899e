"""What an action is, and the one registry of them.

An action is a named, permission-checked operation on an explicit set of targets (one for
most actions, many for bulk job actions). A family module (cron, queues, jobs) defines
how to snapshot its targets, what must not drift, the effect in words, and how to apply
the change; the pipeline does everything else the same way for all of them.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, LiteralString

from psycopg.types.json import Jsonb

from ..db import Conn
from ..db.queries import Statements
from ..errors import InvalidArgument
from ..seams import Principal
from .errors import InvalidParams, InvalidTargets

type Snapshot = dict[str, Any]
# One snapshot per target id, as the pipeline hands them to an action.
type Snapshots = Mapping[str, Snapshot]
# An action's parameters, as its parse_params returned them.
type Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What an action's apply step may know about the confirmed mutation."""

    principal: Principal
    surface: str
    reason: str | None
    prefix: str
    now: datetime
    preview_token: str | None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a checked apply did: the change (before and after each target), or nothing
    and the targets that drifted from the preview (in target order). An action whose
    preview fixed its set itself (:meth:`Action.select_targets`) may instead change the
    targets that are as previewed and leave the others, named in ``skipped``: the confirm
    then reports them (the audit event's ``skipped``) rather than changing nothing."""

    before: Mapping[str, Snapshot]
    after: Mapping[str, Snapshot]
    drifted: list[str]
    skipped: list[str] = field(default_factory=list)


class RowSnapshots(Mapping[str, Snapshot]):
    """Snapshots of many targets kept as the rows the database returned (column 0 is the
    target id), each made into a dict only when it is read.

    A 100k-job bulk action audits counts by state (:meth:`count_by`) and hands the caller
    these snapshots; building 200k dicts that nobody reads was a third of its confirm time.
    """

    def __init__(self, rows: Sequence[Sequence[Any]], columns: Mapping[str, int]) -> None:
        self._rows = rows
        self._columns = dict(columns)
        self._index: dict[str, int] | None = None

    def _position(self, key: str) -> int:
        if self._index is None:
            self._index = {str(row[0]): i for i, row in enumerate(self._rows)}
        return self._index[key]

    def __getitem__(self, key: str) -> Snapshot:
        row = self._rows[self._position(key)]
        return {name: row[i] for name, i in self._columns.items()}

    def __iter__(self) -> Iterator[str]:
        return (str(row[0]) for row in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self._position(key)
        except KeyError:
            return False
        return True

    def count_by(self, name: str) -> dict[str, int]:
        """How many targets have each value of one column (e.g. state)."""
        return dict(Counter(str(row[self._columns[name]]) for row in self._rows))


@dataclass(frozen=True, slots=True)
class PreviewFields:
    """What the pipeline decided about a preview before its targets are looked at."""

    token: str
    resource_id: str
    actor_id: str
    actor_type: str
    actor_label: str
    surface: str
    ttl: Any  # a timedelta

    def bind(
        self, action: str, targets: Sequence[str], params: Params, effect: str
    ) -> dict[str, Any]:
        """The parameters every statement that stores a preview binds (previews.sql, cron
        entries' and job sets' own): who previews what, from where, for how long, and the
        plan. A statement binds those it uses and adds its own."""
        return {
            "token": self.token,
            "action": action,
            "resource_id": self.resource_id,
            "targets": Jsonb(list(targets)),
            "params": Jsonb(dict(params)),
            "effect": effect,
            "plan": plan_text(action, params),
            "actor_id": self.actor_id,
            "actor_type": self.actor_type,
            "actor_label": self.actor_label,
            "surface": self.surface,
            "ttl": self.ttl,
        }


@dataclass(frozen=True, slots=True)
class ConfirmStatement:
    """An action's whole confirm as one named statement (see ``confirm_set_paused`` in
    ``db/queries/cron_entries.sql``): it locks the preview while it is ready, unexpired and
    the confirming actor's, changes the target only while it is as previewed, writes the
    audit event from the change and consumes the preview. It returns one row: ``guarded``
    (0 when the preview was not ready), ``event_id`` (NULL when a target drifted),
    ``before`` and ``after``. ``params`` are the action's parameters; the pipeline adds
    ``token``, ``actor_id`` and the ``audit_*`` ones, names an action may not use.
    """

    sql: LiteralString
    params: dict[str, Any]


def plan_text(action: str, params: Params) -> str:
    """The plan half of a preview's plan hash (``powertools_plan_hash``, migration 0004):
    the action and its parameters as canonical JSON."""
    return json.dumps(
        {"action": action, "params": params}, sort_keys=True, separators=(",", ":"), default=str
    )


def drift_text(action: Action, targets: Sequence[str], snapshots: Snapshots) -> str:
    """The state half of the plan hash: ``target:key[:key...]`` per target, in target
    order. The statements that store a preview in SQL build the same text."""
    parts = []
    for target in targets:
        key = action.drift_key(snapshots[target])
        keys = key if isinstance(key, list | tuple) else [key]
        parts.append(":".join([target, *(str(k) for k in keys)]))
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class StoredPreview:
    """The outcome of :meth:`Action.store_preview`: the stored row (with ``before``), or
    why nothing was stored (targets that do not exist; up to ten targets the action does not apply to,
    with the reason, and how many there are in all)."""

    row: Mapping[str, Any] | None
    missing: list[str]
    problems: list[tuple[str, str]]
    problem_count: int


Q = Statements(previews="preview_before")


class Action(ABC):
    name: ClassVar[str]
    event: ClassVar[str]  # audit event name, e.g. "cron.paused"
    resource_type: ClassVar[str]
    label: ClassVar[str]  # button text, e.g. "Pause cron entry"
    destructive: ClassVar[bool] = False
    max_targets: ClassVar[int] = 1
    # Given no targets, the action finds them from its parameters (select_targets).
    selects_targets: ClassVar[bool] = False

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the action's parameters. The default accepts none."""
        self.refuse_unknown(raw, frozenset())
        return {}

    def with_settings(self, parsed: dict[str, Any], config: Any) -> dict[str, Any]:
        """The parameters to store on the preview: the parsed ones plus any of the host's
        settings (a ``Config``) the action judges by, so that preview and confirm judge by
        the same numbers and the audit records them. The default adds none; an operator
        cannot give these (``parse_params`` refuses unknown names)."""
        return parsed

    def refuse_unknown(self, raw: Mapping[str, Any], accepted: frozenset[str]) -> None:
        """Raise InvalidParams naming any parameter the action does not take."""
        unknown = set(raw) - accepted
        if unknown:
            takes = f"takes {', '.join(sorted(accepted))}" if accepted else "takes no parameters"
            raise InvalidParams(f"{self.name} {takes}, not {', '.join(sorted(unknown))}")

    def parse_target(self, raw: str) -> str:
        """Normalise one target id, raising InvalidTargets when it cannot be one."""
        return raw

    async def select_targets(self, conn: Conn, params: Params) -> tuple[list[str], dict[str, Any]]:
        """The targets an action with ``selects_targets`` finds itself when it is given
        none (a queue's orphaned jobs, as the database finds them at preview), and the
        parameters to store with them (the parsed ones plus what the selection found).
        The pipeline then authorizes, snapshots, checks and stores them as given ones."""
        raise NotImplementedError(f"{self.name} takes explicit targets")

    @abstractmethod
    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        """Current state of each target that exists (locked FOR UPDATE when ``lock``)."""

    @abstractmethod
    def drift_key(self, snapshot: Snapshot) -> Any:
        """The part of a snapshot that must be unchanged at execute time."""

    @abstractmethod
    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        """Why the action does not apply to this target now, or None when it does."""

    @abstractmethod
    def effect(self, snapshots: Snapshots, params: Params) -> str:
        """The intended effect in words, shown on the preview."""

    def confirm_statement(
        self, ctx: ApplyContext, targets: Sequence[str], params: Params, expected: Snapshots | None
    ) -> ConfirmStatement | None:
        """The whole confirm as one statement (see :class:`ConfirmStatement`), or None
        (the default): the pipeline then confirms in a transaction through
        :meth:`apply_checked`, a few round trips more. An action has one or the other."""
        return None

    async def store_preview(
        self, conn: Conn, targets: Sequence[str], params: Params, fields: PreviewFields
    ) -> StoredPreview | None:
        """Snapshot, check and store the preview in the database in one statement; None
        when the action has no such path for these targets (the default), and the pipeline
        snapshots in Python, checks, and stores the preview with a second statement."""
        return None

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        """Make the change inside the pipeline's transaction, the targets locked and checked
        by :meth:`apply_checked`; return the after-snapshots. An action that overrides
        :meth:`apply_checked` with a statement that checks and changes together (the job
        actions) has nothing to put here."""
        raise NotImplementedError(f"{self.name} applies through apply_checked")

    async def apply_checked(
        self,
        conn: Conn,
        ctx: ApplyContext,
        targets: Sequence[str],
        params: Params,
        expected: Snapshots | None,
    ) -> Applied:
        """Apply the change only if no target drifted from the preview (``ctx.preview_token``,
        whose row the pipeline holds locked); otherwise report the drifted targets. The
        pipeline rolls the transaction back on drift, so a partial change is never kept.

        ``expected`` is the preview's before-state when the pipeline has it at hand (None
        for large bulk previews). This default locks and snapshots the targets, compares
        drift keys, then calls :meth:`apply`; an action can override it with one statement
        that checks and changes together (see the job actions).
        """
        if expected is None:
            cur = await conn.execute(Q.preview_before, {"token": ctx.preview_token})
            row = await cur.fetchone()
            expected = dict(row["before"]) if row else {}
        snapshots = await self.snapshot(conn, targets, lock=True)
        drifted = [
            t
            for t in targets
            if t not in snapshots
            or t not in expected
            or self.drifted(snapshots[t], expected[t], params)
        ]
        if drifted and (len(drifted) == len(targets) or not self.applies_the_rest(params)):
            return Applied({}, {}, drifted)
        left = set(drifted)
        keep = {t: snapshots[t] for t in targets if t not in left}
        after = await self.apply(conn, ctx, keep, params)
        return Applied(keep, after, [], drifted)

    def applies_the_rest(self, params: Params) -> bool:
        """Whether a confirm with some targets drifted changes the others (and names the
        drifted ones, ``Applied.skipped``) instead of nothing: by default no, a preview's
        set changes whole or not at all."""
        return False

    def drifted(self, snapshot: Snapshot, expected: Snapshot, params: Params) -> bool:
        """Whether a target, locked and snapshotted again, differs from its preview so that
        :meth:`apply_checked` must not change it: by default its drift key changed."""
        return bool(self.drift_key(snapshot) != self.drift_key(expected))


class NamedAction(Action):
    """An action on one kind of named, versioned row (a cron entry, a queue): a target is
    a name matching ``target_pattern``, and the row's version is the drift key."""

    target_pattern: ClassVar[re.Pattern[str]]
    target_noun: ClassVar[str]  # what the refusal calls a target, e.g. "queue name"

    def parse_target(self, raw: str) -> str:
        if not self.target_pattern.match(raw):
            raise InvalidTargets(f"{raw[:60]!r} is not a {self.target_noun}")
        return raw

    def drift_key(self, snapshot: Snapshot) -> Any:
        return snapshot["version"]


class PauseToggle:
    """Mixed into the pause and resume actions of a kind of row (a cron entry, a queue):
    ``pause`` is the direction, and a row already that way is refused."""

    pause: ClassVar[bool]
    resource_type: ClassVar[str]

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        if bool(snapshot["paused"]) != self.pause:
            return None
        noun = self.resource_type.replace("_", " ")
        return f"the {noun} is {'already' if self.pause else 'not'} paused"


def whole_number(raw: Mapping[str, Any], name: str, most: int, unit: str = "") -> int:
    """A parameter that must be a whole number from 1 to ``most`` (a form sends text)."""
    try:
        value = int(str(raw.get(name, "")).strip())
    except ValueError:
        raise InvalidParams(f"{name} must be a whole number{unit}") from None
    if not 1 <= value <= most:
        raise InvalidParams(f"{name} must be between 1 and {most}")
    return value


REGISTRY: dict[str, Action] = {}


def register(action: type[Action]) -> type[Action]:
    """Class decorator of a family module: one instance of the action in :data:`REGISTRY`."""
    if action.name in REGISTRY:
        raise InvalidArgument(f"action {action.name!r} registered twice")
    REGISTRY[action.name] = action()
    return action
