DROP TABLE IF EXISTS powertools_queue_states;
DROP TABLE IF EXISTS powertools_scheduler_coverage;
DROP TABLE IF EXISTS powertools_cron_slots;
DROP TABLE IF EXISTS powertools_cron_entries;
DROP TABLE IF EXISTS powertools_previews;
DROP TABLE IF EXISTS powertools_audit_events;
DROP FUNCTION IF EXISTS powertools_audit_events_immutable();
