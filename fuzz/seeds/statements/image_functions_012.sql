CREATE TABLE thumbs AS SELECT id, thumbnail(image, 32) AS t FROM photos;;
