-- Audit events (powertools_audit_events): append-only, a trigger refuses UPDATE, DELETE and
-- TRUNCATE. Every insert goes through powertools_write_audit_event (migration 0013):
-- audit.writer's insert_event, and the one-statement confirms (confirm_set_paused in
-- cron_entries.sql, confirm_set_limits in queue_limits.sql) from the change they make.

-- name: insert_event
-- One event, in the caller's transaction so it commits or rolls back with the change it
-- records, through powertools_write_audit_event (migration 0013), the one definition
-- every event insert shares. With audit_consume it also consumes its preview (which the
-- caller holds locked, so it must still be ready): one round trip less on every confirm,
-- and the two can never be written apart. consumed says whether it did.
SELECT id, occurred_at, consumed
FROM powertools_write_audit_event(%(audit_event)s, %(audit_outcome)s,
                                  %(audit_preview_token)s, %(audit_before)s,
                                  %(audit_after)s, %(audit_consume)s)

-- name: list_events
-- One page of the audit log, newest first (keyset: ``before`` is an event id). Lists show
-- who did what to which resource, when and why: not the snapshots, and not a bulk event's
-- target list (up to 100k ids), which only the event's own page renders. Each filter is a
-- bound parameter (NULL matches everything); run it unprepared (``prepare=False``): a
-- generic plan could not tell which filters are set and would scan the table, a one-off
-- plan uses the index of the filter given.
SELECT id, occurred_at, action, command, resource_type, resource_id, principal_id,
       principal_type, principal_label, reason, preview_token, NULL::jsonb AS before,
       NULL::jsonb AS after, surface, outcome,
       jsonb_build_object('effect', detail->'effect') AS detail,
       coalesce(jsonb_array_length(detail->'targets'), 0) AS target_count
FROM powertools_audit_events
WHERE (%(resource_type)s::text IS NULL OR resource_type = %(resource_type)s::text)
  AND (%(resource_id)s::text IS NULL OR resource_id = %(resource_id)s::text)
  AND (%(action)s::text IS NULL OR action = %(action)s::text OR command = %(action)s::text)
  AND (%(actor)s::text IS NULL OR principal_id = %(actor)s::text)
  AND (%(outcome)s::text IS NULL OR outcome = %(outcome)s::text)
  AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s::timestamptz)
  AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s

-- name: list_subject_events
-- One page of a subject's trail, newest first, with the filters and columns of
-- list_events (unprepared too): its own events (the resource index) merged with the bulk
-- events whose ``detail.targets`` name it (a GIN index on that array, migration 0002).
-- The filters both branches share are written once (matching); NOT MATERIALIZED inlines
-- it into each branch, so each keeps its own index and limit.
WITH matching AS NOT MATERIALIZED (
    SELECT id, resource_id, detail FROM powertools_audit_events
    WHERE (%(resource_type)s::text IS NULL OR resource_type = %(resource_type)s::text)
      AND (%(action)s::text IS NULL OR action = %(action)s::text
           OR command = %(action)s::text)
      AND (%(actor)s::text IS NULL OR principal_id = %(actor)s::text)
      AND (%(outcome)s::text IS NULL OR outcome = %(outcome)s::text)
      AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s::timestamptz)
      AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
)
SELECT id, occurred_at, action, command, resource_type, resource_id, principal_id,
       principal_type, principal_label, reason, preview_token, NULL::jsonb AS before,
       NULL::jsonb AS after, surface, outcome,
       jsonb_build_object('effect', detail->'effect') AS detail,
       coalesce(jsonb_array_length(detail->'targets'), 0) AS target_count
FROM ((SELECT id FROM matching
       WHERE resource_id = %(resource_id)s::text
       ORDER BY id DESC
       LIMIT %(limit)s)
      UNION
      (SELECT id FROM matching
       WHERE (detail->'targets') ? %(resource_id)s::text AND resource_id LIKE 'bulk:%%'
       ORDER BY id DESC
       LIMIT %(limit)s)) subject
JOIN powertools_audit_events USING (id)
ORDER BY id DESC
LIMIT %(limit)s

-- name: get_event
-- One event, whole (snapshots and detail included), for its own page.
SELECT id, occurred_at, action, command, resource_type, resource_id, principal_id,
       principal_type, principal_label, reason, preview_token, before, after, surface,
       outcome, detail
FROM powertools_audit_events WHERE id = %(id)s

-- name: recent_subjects
-- Distinct subjects of recent events, most recently touched first (a bounded scan of the
-- latest ``scan`` events; bulk events are not subjects).
SELECT resource_type, resource_id, max(id) AS last_id, max(occurred_at) AS last_at,
       count(*)::int AS events
FROM (SELECT id, occurred_at, resource_type, resource_id FROM powertools_audit_events
      WHERE resource_id NOT LIKE 'bulk:%%'
      ORDER BY id DESC LIMIT %(scan)s) recent
GROUP BY resource_type, resource_id
ORDER BY last_id DESC
LIMIT %(limit)s

-- name: distinct_actions
-- Event names seen in the latest 5,000 events: the audit filter's choices.
SELECT DISTINCT action FROM (SELECT action FROM powertools_audit_events
                             ORDER BY id DESC LIMIT 5000) recent ORDER BY action
