INSERT INTO nope FROM 'tests/data/photos/dev';
