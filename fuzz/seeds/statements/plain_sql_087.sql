SELECT count(*) FROM sizes s JOIN photos p USING (id) WHERE s.pixels = p.width * p.height;
