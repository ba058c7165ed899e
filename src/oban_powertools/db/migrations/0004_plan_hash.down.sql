DROP FUNCTION IF EXISTS powertools_plan_hash(text, text);
