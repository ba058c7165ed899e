"""Everything that runs inside an oban node.

* :mod:`.instance`: :class:`Runtime`, what one Oban instance runs, wired through the
  keyword arguments ``Powertools.oban_options()`` returns;
* :mod:`.hooks`: the only module that touches oban's private extension points (each hook
  has its contract test);
* :mod:`.scheduler`: the leader-run cron scheduler loop (what is due is decided by
  :mod:`oban_powertools.cron`, a domain module without loops);
* :mod:`.applier`: the stored queue decisions applied on every node;
* :mod:`.presence`: which nodes run the runtime, for the doctor and the overview;
* :mod:`.lifeline`: the accurate rescue of orphaned jobs (their producer stopped
  heartbeating), run by oban's lifeline loop on the leader.
"""

from .instance import Runtime

__all__ = ["Runtime"]
