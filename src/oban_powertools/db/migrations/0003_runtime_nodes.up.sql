-- Which oban nodes run the Powertools runtime (see presence.py). A node that leads or
-- runs queues without it is shown to operators: as leader it would run oban's own cron
-- scheduler, which neither sees the database entries nor honours a pause.
CREATE TABLE powertools_runtime_nodes (
    name text NOT NULL,                                 -- the oban instance name
    node text NOT NULL,
    version text NOT NULL,                              -- oban-powertools version
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),         -- renewed while the node runs
    PRIMARY KEY (name, node)
);
