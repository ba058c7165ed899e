DROP TABLE IF EXISTS powertools_workflow_edges;
DROP TABLE IF EXISTS powertools_workflow_steps;
DROP TABLE IF EXISTS powertools_workflows;
