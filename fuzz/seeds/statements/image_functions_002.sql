SELECT id, width, height, image FROM photos WHERE uri LIKE '%apple%';
