-- The audit writer and the preview guard as database functions, so every statement that
-- confirms a preview (audit.writer's insert_event and the one-statement confirms in
-- cron_entries.sql and queue_limits.sql) locks the preview and writes its event the same
-- way, from one definition.

-- The preview a confirm may consume, locked: ready, unexpired and the confirming actor's.
-- No row: another confirm won, it expired, or it is someone else's.
CREATE FUNCTION powertools_lock_ready_preview(p_token text, p_actor_id text)
    RETURNS TABLE (token text, before jsonb)
    LANGUAGE sql VOLATILE
    AS $$
    SELECT p.token, p.before FROM powertools_previews p
    WHERE p.token = p_token AND p.status = 'ready' AND p.actor_id = p_actor_id
      AND p.expires_at > clock_timestamp()
    FOR UPDATE
    $$;

-- One audit event, and with p_consume the consumption of its preview (which the caller
-- holds locked) by it. p_event is the header audit.writer.event_params builds: action,
-- command, resource_type, resource_id, principal_id, principal_type, principal_label,
-- reason, surface, detail. consumed: how many previews it consumed (0 or 1).
CREATE FUNCTION powertools_write_audit_event(
    p_event jsonb, p_outcome text, p_preview_token text, p_before jsonb, p_after jsonb,
    p_consume boolean)
    RETURNS TABLE (id bigint, occurred_at timestamptz, consumed integer)
    LANGUAGE plpgsql VOLATILE
    AS $$
    DECLARE
        new_id bigint;
        new_at timestamptz;
        n integer := 0;
    BEGIN
        INSERT INTO powertools_audit_events AS e (
            action, command, resource_type, resource_id, principal_id, principal_type,
            principal_label, reason, preview_token, before, after, surface, outcome, detail)
        VALUES (
            p_event ->> 'action', p_event ->> 'command', p_event ->> 'resource_type',
            p_event ->> 'resource_id', p_event ->> 'principal_id',
            p_event ->> 'principal_type', p_event ->> 'principal_label',
            p_event ->> 'reason', p_preview_token, p_before, p_after,
            p_event ->> 'surface', p_outcome, coalesce(p_event -> 'detail', '{}'::jsonb))
        RETURNING e.id, e.occurred_at INTO new_id, new_at;
        IF p_consume THEN
            UPDATE powertools_previews p
            SET status = 'consumed', reason = p_event ->> 'reason',
                resolved_at = clock_timestamp(), audit_event_id = new_id
            WHERE p.token = p_preview_token AND p.status = 'ready';
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        RETURN QUERY SELECT new_id, new_at, n;
    END
    $$;
