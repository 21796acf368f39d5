CREATE IMAGE TABLE t2 FROM 'tests/data/nothing/*.jpg';
