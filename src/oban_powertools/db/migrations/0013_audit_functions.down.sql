DROP FUNCTION IF EXISTS powertools_write_audit_event(jsonb, text, text, jsonb, jsonb, boolean);
DROP FUNCTION IF EXISTS powertools_lock_ready_preview(text, text);
