SELECT width(CAST('hello' AS bytea));
