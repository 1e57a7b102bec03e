-- Core's sessions in SQL (`[session] store = "db"`): one row per session, its values as JSON
-- text, times in Unix seconds, and a version bumped by every write (compare-and-set updates).
CREATE TABLE flagon_sessions (
    id TEXT NOT NULL PRIMARY KEY,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX flagon_sessions_expires_at ON flagon_sessions (expires_at);
