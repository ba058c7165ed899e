-- The server and its catalog (information_schema): what doctor reads to say whether the
-- database is the one the library needs.

-- name: server_version
-- The PostgreSQL version doctor shows beside the connection it made.
SELECT current_setting('server_version') AS version

-- name: oban_tables_present
-- Which of oban's tables exist in the schema (prefix) the library is configured for.
SELECT table_name FROM information_schema.tables
WHERE table_schema = %(prefix)s AND table_name = ANY(%(tables)s)
