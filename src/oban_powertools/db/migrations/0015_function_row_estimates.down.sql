ALTER FUNCTION powertools_write_audit_event(jsonb, text, text, jsonb, jsonb, boolean) ROWS 1000;
ALTER FUNCTION powertools_lock_ready_preview(text, text) ROWS 1000;
