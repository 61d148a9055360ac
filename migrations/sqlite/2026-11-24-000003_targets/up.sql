-- The systems that hold a tenant's subjects' data, told to erase on approval.
CREATE TABLE erasure_targets (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    url          TEXT NOT NULL,
    -- The HMAC signing secret, sealed (AEAD) with a key derived from the server secret.
    secret_box   TEXT NOT NULL,
    timeout_ms   INTEGER NOT NULL,
    enabled      BOOLEAN NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);

-- One row per request and target: where the erasure stands there.
CREATE TABLE target_calls (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    request_id        TEXT NOT NULL REFERENCES erasure_requests (id),
    target_id         TEXT NOT NULL REFERENCES erasure_targets (id),
    target_name       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'confirmed', 'failed')),
    attempts          INTEGER NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    confirmed_at      TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    UNIQUE (request_id, target_id)
);
CREATE INDEX target_calls_request ON target_calls (request_id);

-- Platform callbacks are signed with the tenant's callback secret (sealed).
ALTER TABLE tenants ADD COLUMN callback_secret_box TEXT;

ALTER TABLE erasure_requests ADD COLUMN approved_at TIMESTAMP;
ALTER TABLE erasure_requests ADD COLUMN erased_at TIMESTAMP;
ALTER TABLE erasure_requests ADD COLUMN scrubbed_at TIMESTAMP;
