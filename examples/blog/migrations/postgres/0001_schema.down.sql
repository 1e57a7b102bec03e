DROP TABLE comments;
DROP TABLE post_tags;
DROP TABLE tags;
DROP TABLE posts;
DROP TABLE images;
DROP TABLE categories;
DROP TABLE users;
