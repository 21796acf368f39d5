DROP TABLE spectradb_ingest_errors;
