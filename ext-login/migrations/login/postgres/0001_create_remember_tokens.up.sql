-- flagon-login's remember-me tokens (`[login] remember_store = "db"`): one row per series,
-- only a SHA-256 of the validator, times in Unix seconds.
CREATE TABLE flagon_login_remember (
    selector VARCHAR(32) NOT NULL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    validator_hash VARCHAR(64) NOT NULL,
    previous_hash VARCHAR(64),
    rotated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    auth_digest VARCHAR(64) NOT NULL
);
CREATE INDEX flagon_login_remember_user ON flagon_login_remember (user_id);
