SELECT table_name, version, uri FROM spectradb_ingest_errors ORDER BY uri;
