DROP FUNCTION IF EXISTS powertools_preview_expectations(text);
DROP FUNCTION IF EXISTS powertools_producer_heartbeat(text[], text);
DROP FUNCTION IF EXISTS powertools_producer_live(text[], text, text[], text[]);
DROP FUNCTION IF EXISTS powertools_live_producers(double precision);
DROP FUNCTION IF EXISTS powertools_workflow_tree(uuid);
