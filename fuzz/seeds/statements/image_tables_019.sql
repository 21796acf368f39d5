INSERT INTO photos FROM 'tests/data/photos/dev/opencv_*.jpg' WITH (label = 'parent_dir');;
