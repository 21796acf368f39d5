SELECT bool_and(reason LIKE '%cannot decode image%') FROM spectradb_ingest_errors;
