DROP TABLE IF EXISTS powertools_runtime_nodes;
