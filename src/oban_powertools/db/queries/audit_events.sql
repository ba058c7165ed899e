-- Audit events (powertools_audit_events): append-only, a trigger refuses UPDATE, DELETE and
-- TRUNCATE. audit.writer is the only code that inserts them; the one-statement confirms
-- (confirm_set_paused in cron_entries.sql) write theirs from the change they make.

-- name: insert_event
-- One event, in the caller's transaction so it commits or rolls back with the change it
-- records. With audit_consume it also consumes its preview (which the caller holds
-- locked, so it must still be ready): one round trip less on every confirm, and the two
-- can never be written apart. consumed says whether it did.
WITH event AS (
    INSERT INTO powertools_audit_events (
        action, command, resource_type, resource_id, principal_id, principal_type,
        principal_label, reason, preview_token, before, after, surface, outcome, detail
    ) VALUES (
        %(audit_action)s, %(audit_command)s, %(audit_resource_type)s, %(audit_resource_id)s,
        %(audit_principal_id)s, %(audit_principal_type)s, %(audit_principal_label)s,
        %(audit_reason)s, %(audit_preview_token)s, %(audit_before)s, %(audit_after)s,
        %(audit_surface)s, %(audit_outcome)s, %(audit_detail)s
    )
    RETURNING id, occurred_at
),
consumed AS (
    UPDATE powertools_previews
    SET status = 'consumed', reason = %(audit_reason)s, resolved_at = clock_timestamp(),
        audit_event_id = (SELECT id FROM event)
    WHERE token = %(audit_preview_token)s AND status = 'ready'
      AND %(audit_consume)s::boolean
    RETURNING token
)
SELECT event.id, event.occurred_at, (SELECT count(*) FROM consumed) AS consumed FROM event
