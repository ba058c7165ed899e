-- Row estimates for the functions of migration 0013, which return one row each but were
-- planned as set-returning functions of PostgreSQL's default 1,000 rows. A confirm that
-- joins both (cron_entries.sql: confirm_set_paused) was then estimated at millions of
-- rows, over the JIT thresholds: the server compiled it with LLVM on every confirm (47
-- functions, 370 ms, for a statement that runs in 17 ms). Not inlined (one locks rows,
-- one is PL/pgSQL), so the estimate is all the planner knows of them.
ALTER FUNCTION powertools_lock_ready_preview(text, text) ROWS 1;
ALTER FUNCTION powertools_write_audit_event(jsonb, text, text, jsonb, jsonb, boolean) ROWS 1;
