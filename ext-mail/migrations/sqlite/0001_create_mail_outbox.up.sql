-- The mail outbox: one row per queued message, its bytes as sent and its pending recipients
-- (a JSON array), times in Unix milliseconds; a claim is a token with a lease expiry.
CREATE TABLE flagon_mail_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    recipients TEXT NOT NULL,
    raw TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    claimed_until BIGINT,
    claim_token TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX flagon_mail_outbox_due ON flagon_mail_outbox (status, available_at);
CREATE INDEX flagon_mail_outbox_claim ON flagon_mail_outbox (claim_token);
