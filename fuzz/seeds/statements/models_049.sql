SELECT uri, tiny(image) FROM colors ORDER BY uri;
