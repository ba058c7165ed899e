-- The migration runner's bookkeeping (powertools_schema_versions), its advisory lock and
-- the catalog reads it needs. The migrations themselves are the files in db/migrations.
-- ``{schema}`` and ``{index}`` are identifiers, which PostgreSQL cannot take as bound
-- parameters: the runner composes them with psycopg's ``sql.Identifier`` (quoted), never
-- as text.

-- name: try_lock
-- The run's session-level advisory lock, polled (see db/migrate.py for why not waited on).
SELECT pg_try_advisory_lock(%(key)s) AS locked

-- name: unlock
-- Releases the run's advisory lock.
SELECT pg_advisory_unlock(%(key)s)

-- name: create_schema
-- The schema must exist before oban's installer or ours can create anything in it.
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: create_version_table
-- One row per applied migration, written in the migration's own transaction.
CREATE TABLE IF NOT EXISTS powertools_schema_versions (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: invalid_index
-- Whether a failed concurrent build left an INVALID index of this name in the schema.
SELECT 1 FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = %(name)s AND NOT i.indisvalid

-- name: drop_invalid_index
-- Drops the invalid index a failed concurrent build left, so that the migration's
-- ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` builds it again (outside a transaction).
DROP INDEX CONCURRENTLY IF EXISTS {index}

-- name: applied_versions
-- Every applied migration and when.
SELECT version, applied_at FROM powertools_schema_versions

-- name: oban_installed
-- Whether oban's own schema is installed (its jobs table on the search path).
SELECT to_regclass('oban_jobs') IS NOT NULL AS present

-- name: versions_present
-- Whether the version table exists yet (a database never migrated has none).
SELECT to_regclass('powertools_schema_versions') IS NOT NULL AS present

-- name: schema_present
-- Both of the above at once, for the read-only schema check.
SELECT to_regclass('oban_jobs') IS NOT NULL AS oban,
       to_regclass('powertools_schema_versions') IS NOT NULL AS versions

-- name: record_version
-- Records an applied migration.
INSERT INTO powertools_schema_versions (version, name) VALUES (%(version)s, %(name)s)

-- name: delete_version
-- Forgets a migration rolled back.
DELETE FROM powertools_schema_versions WHERE version = %(version)s
