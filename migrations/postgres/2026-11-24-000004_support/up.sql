-- Support accounts: the support team's dashboard and API.
CREATE TABLE support_users (
    id             TEXT PRIMARY KEY,
    -- The login name; lower case.
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    -- argon2id, PHC string format.
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    disabled_at    TIMESTAMP,
    -- Consecutive failed logins, and the lock they led to.
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   TIMESTAMP,
    last_login_at  TIMESTAMP
);

-- Browser sessions: the cookie holds a random secret, the table its SHA-256.
CREATE TABLE support_sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES support_users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    ended_at    TIMESTAMP
);
CREATE INDEX support_sessions_user ON support_sessions (user_id);

-- API tokens for /v1/support: stored as SHA-256 digests.
CREATE TABLE support_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES support_users (id),
    name          TEXT NOT NULL,
    token_prefix  TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP
);
CREATE INDEX support_tokens_user ON support_tokens (user_id);

-- The one deadline extension GDPR Art. 12(3) allows, and a support
-- cancellation's reason. Both reasons are free text told to people: they are
-- scrubbed with the request's personal fields.
ALTER TABLE erasure_requests ADD COLUMN extended_at TIMESTAMP;
ALTER TABLE erasure_requests ADD COLUMN extension_reason TEXT;
ALTER TABLE erasure_requests ADD COLUMN extended_by TEXT;
ALTER TABLE erasure_requests ADD COLUMN cancel_reason TEXT;

-- The support queue across tenants: one index per filter, each ending in the
-- sort key so a page is an index range scan (sort by due date, id breaks ties).
CREATE INDEX erasure_requests_due ON erasure_requests (due_at, id);
CREATE INDEX erasure_requests_state_due ON erasure_requests (state, due_at, id);
CREATE INDEX erasure_requests_tenant_due ON erasure_requests (tenant_id, due_at, id);
CREATE INDEX erasure_requests_initiator_due ON erasure_requests (initiator, due_at, id);
CREATE INDEX erasure_requests_received ON erasure_requests (received_at, id);
-- The overview counts closed requests over a recent window only.
CREATE INDEX erasure_requests_closed ON erasure_requests (state, closed_at)
    WHERE closed_at IS NOT NULL;
