DROP TABLE flagon_mail_outbox;
