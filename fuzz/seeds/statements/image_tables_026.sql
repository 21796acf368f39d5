CREATE IMAGE TABLE t2 FROM 'tests/data/photos/dev' WITH (quality = 101);
