SELECT uri, tiny_class(image) FROM colors WHERE tiny(image) LIKE 'g%';
