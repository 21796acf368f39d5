SELECT n.photo_id, p.uri FROM notes n LEFT JOIN photos p ON p.id = n.photo_id;
