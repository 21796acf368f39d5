SELECT tiny(image) FROM colors;
