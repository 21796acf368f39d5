CREATE IMAGE TABLE broken FROM 'tests/data/broken';
