-- flagon-login's remember-me tokens (`[login] remember_store = "db"`): one row per series,
-- only a SHA-256 of the validator, times in Unix seconds. One statement (MySQL does not roll
-- DDL back).
CREATE TABLE flagon_login_remember (
    selector CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    validator_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    previous_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    rotated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    auth_digest CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    INDEX flagon_login_remember_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
