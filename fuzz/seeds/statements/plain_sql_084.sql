SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY id) AS prev FROM photos) WHERE prev IS NOT NULL AND prev <> id - 1;
