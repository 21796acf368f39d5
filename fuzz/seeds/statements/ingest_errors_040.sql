CREATE IMAGE TABLE broken FROM 'tests/data/broken' WITH (on_error = 'skip');
