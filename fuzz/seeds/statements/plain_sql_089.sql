SELECT c.caption, p.uri FROM captions c JOIN photos p ON p.uri LIKE '%' || c.file ORDER BY c.caption;
