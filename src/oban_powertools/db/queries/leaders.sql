-- Oban's leadership leases (oban_leaders), owned and written by oban; the library only
-- reads them.

-- name: leases_renewed
-- The leaders whose lease was renewed within the window: doctor's answer to "is a leader
-- running" before migration 0003 adds the presence table.
SELECT name, node FROM oban_leaders
WHERE expires_at > timezone('UTC', now()) - make_interval(secs => %(window)s)
ORDER BY name
