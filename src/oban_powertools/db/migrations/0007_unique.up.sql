-- Unique (idempotent) enqueue (unique/, runtime/inserter.py).

-- A unique job holds its key (meta.unique_key) only while it is in one of its unique
-- states (meta.unique.states): when it moves to another state, whoever moves it (oban's
-- ack, the stager, the lifeline, an operator), the key is dropped and a duplicate may be
-- inserted again. The key stays readable in meta.unique.key.
CREATE FUNCTION powertools_release_unique() RETURNS trigger LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NOT coalesce((NEW.meta -> 'unique' -> 'states') ? NEW.state::text, false) THEN
            NEW.meta := NEW.meta - 'unique_key';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER powertools_unique_release BEFORE UPDATE OF state ON oban_jobs
    FOR EACH ROW WHEN (NEW.meta ? 'unique_key' AND NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION powertools_release_unique();
