SELECT min(id), max(id) FROM photos WHERE label = 'dev';
