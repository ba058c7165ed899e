DROP TABLE IF EXISTS powertools_batch_callbacks;
DROP TABLE IF EXISTS powertools_batch_jobs;
DROP TABLE IF EXISTS powertools_batches;
DROP TABLE IF EXISTS powertools_chain_links;
DROP TABLE IF EXISTS powertools_chains;
