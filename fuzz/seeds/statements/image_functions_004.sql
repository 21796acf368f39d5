SELECT substr(encode(to_png(image, 1), 'hex'), 1, 16), substr(encode(to_png(image, 1), 'hex'), 33, 16) FROM photos WHERE uri LIKE '%apple%';
