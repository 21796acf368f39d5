SELECT p.id, n.note FROM photos p JOIN notes n ON p.id = n.photo_id ORDER BY p.id;
