SELECT count(*) FROM spectradb_ingest_errors;
