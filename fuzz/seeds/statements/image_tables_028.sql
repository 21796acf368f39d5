INSERT INTO photos FROM 'tests/data/photos/dev' WITH (quality = 50);
