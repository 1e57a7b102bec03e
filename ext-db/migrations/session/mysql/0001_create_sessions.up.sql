-- Core's sessions in SQL (`[session] store = "db"`): one row per session, its values as JSON
-- text, times in Unix seconds, and a version bumped by every write (compare-and-set updates).
-- One statement: MySQL and MariaDB do not roll DDL back, so a migration is one DDL statement.
CREATE TABLE flagon_sessions (
    id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    data MEDIUMTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    INDEX flagon_sessions_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
