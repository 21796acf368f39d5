CREATE TABLE sizes AS SELECT id, width * height AS pixels FROM photos;;
