-- The blog's tables on MySQL/MariaDB. Timestamps are Unix seconds, flags 0/1 (BIGINT), as on
-- the other backends; search is a FULLTEXT index.
CREATE TABLE users (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL UNIQUE,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role VARCHAR(16) NOT NULL DEFAULT 'author',
    verified_at BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    locale VARCHAR(16),
    created_at BIGINT NOT NULL
) CHARACTER SET utf8mb4;

CREATE TABLE categories (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL UNIQUE,
    slug VARCHAR(120) NOT NULL UNIQUE
) CHARACTER SET utf8mb4;

CREATE TABLE images (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    file_name VARCHAR(64) NOT NULL UNIQUE,
    content_type VARCHAR(64) NOT NULL,
    size BIGINT NOT NULL,
    uploader_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (uploader_id) REFERENCES users (id)
) CHARACTER SET utf8mb4;

CREATE TABLE posts (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    author_id BIGINT NOT NULL,
    title VARCHAR(200) NOT NULL,
    slug VARCHAR(220) NOT NULL UNIQUE,
    body_md MEDIUMTEXT NOT NULL,
    body_html MEDIUMTEXT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'draft',
    category_id BIGINT,
    image_id BIGINT,
    published_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX posts_published (status, published_at),
    INDEX posts_author (author_id),
    FULLTEXT INDEX posts_search (title, body_md),
    FOREIGN KEY (author_id) REFERENCES users (id),
    FOREIGN KEY (category_id) REFERENCES categories (id),
    FOREIGN KEY (image_id) REFERENCES images (id)
) CHARACTER SET utf8mb4;

CREATE TABLE tags (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE
) CHARACTER SET utf8mb4;

CREATE TABLE post_tags (
    post_id BIGINT NOT NULL,
    tag_id BIGINT NOT NULL,
    PRIMARY KEY (post_id, tag_id),
    FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4;

CREATE TABLE comments (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    post_id BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    parent_id BIGINT,
    body TEXT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'visible',
    created_at BIGINT NOT NULL,
    INDEX comments_post (post_id, created_at),
    FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE,
    FOREIGN KEY (author_id) REFERENCES users (id),
    FOREIGN KEY (parent_id) REFERENCES comments (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4;
