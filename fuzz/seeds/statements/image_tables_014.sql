CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled' WITH (label = 'parent_dir', quality = 90);;
