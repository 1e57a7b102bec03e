-- The mail outbox: one row per queued message, its bytes as sent and its pending recipients
-- (a JSON array), times in Unix milliseconds; a claim is a token with a lease expiry.
-- One statement: MySQL and MariaDB do not roll DDL back, so a migration is one DDL statement.
CREATE TABLE flagon_mail_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message_id VARCHAR(255) NOT NULL,
    envelope_from VARCHAR(320) NOT NULL,
    recipients MEDIUMTEXT NOT NULL,
    raw LONGTEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    claimed_until BIGINT NULL,
    claim_token VARCHAR(64) NULL,
    last_error TEXT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT NULL,
    INDEX flagon_mail_outbox_due (status, available_at),
    INDEX flagon_mail_outbox_claim (claim_token)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
