DROP FUNCTION IF EXISTS powertools_workflow_tree(uuid);
