SELECT id, uri FROM broken;
