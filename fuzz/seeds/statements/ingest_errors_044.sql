INSERT INTO broken FROM 'tests/data/broken' WITH (on_error = 'ignore');
