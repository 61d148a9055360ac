CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    approval_policy TEXT NOT NULL CHECK (approval_policy IN ('privacy_contact', 'none')),
    contact_name    TEXT,
    contact_email   TEXT,
    locale          TEXT NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'de', 'fr')),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    CHECK (approval_policy = 'none' OR contact_email IS NOT NULL)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    key_prefix  TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE erasure_requests (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    subject_hash     TEXT NOT NULL,
    subject_id       TEXT,
    subject_email    TEXT,
    initiator        TEXT NOT NULL CHECK (initiator IN ('subject', 'support', 'retention_policy')),
    reason           TEXT,
    callback_url     TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'awaiting_approval', 'erasing', 'erased', 'rejected', 'cancelled', 'failed')),
    batch_id         TEXT,
    idempotency_key  TEXT,
    fingerprint      TEXT NOT NULL,
    received_at      TIMESTAMP NOT NULL,
    due_at           TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    closed_at        TIMESTAMP,
    audit_seq        INTEGER NOT NULL,
    audit_head       TEXT NOT NULL
);
-- One open request per subject and tenant: a second submission returns it.
CREATE UNIQUE INDEX erasure_requests_one_open
    ON erasure_requests (tenant_id, subject_hash)
    WHERE state IN ('pending', 'awaiting_approval', 'erasing', 'failed');
CREATE UNIQUE INDEX erasure_requests_idempotency
    ON erasure_requests (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX erasure_requests_tenant_id ON erasure_requests (tenant_id, id);
CREATE INDEX erasure_requests_tenant_state ON erasure_requests (tenant_id, state, id);
CREATE INDEX erasure_requests_subject ON erasure_requests (tenant_id, subject_hash, id);
CREATE INDEX erasure_requests_open_due ON erasure_requests (due_at)
    WHERE state IN ('pending', 'awaiting_approval', 'erasing', 'failed');

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL REFERENCES erasure_requests (id),
    seq         INTEGER NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    event       TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    detail      TEXT,
    at          TIMESTAMP NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    UNIQUE (request_id, seq)
);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT,
    request_id    TEXT,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    run_at        TIMESTAMP NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    lease_until   TIMESTAMP,
    last_error    TEXT,
    created_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    dead          BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE finished_at IS NULL;
CREATE INDEX jobs_request ON jobs (request_id);
