DROP TABLE IF EXISTS powertools_job_rollup_progress;
DROP TABLE IF EXISTS powertools_job_rollups;
