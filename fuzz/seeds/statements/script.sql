SELECT 'a;b' AS s -- a ; in a comment
FROM t;
/* block ; */ SHOW TABLES;
SELECT 1