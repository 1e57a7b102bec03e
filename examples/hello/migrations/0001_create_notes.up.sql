-- The notes posted through /form.
CREATE TABLE note (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
