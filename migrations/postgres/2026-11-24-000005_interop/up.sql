-- OpenDSR (OpenGDPR) requests: the controller's subject_request_id mapped to
-- lethe's erasure request, with where to send signed status callbacks.
CREATE TABLE opendsr_requests (
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    subject_request_id    TEXT NOT NULL,
    request_id            TEXT NOT NULL REFERENCES erasure_requests (id),
    regulation            TEXT NOT NULL,
    api_version           TEXT NOT NULL,
    -- JSON array of URLs.
    status_callback_urls  TEXT NOT NULL,
    submitted_at          TIMESTAMP NOT NULL,
    received_at           TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, subject_request_id)
);
CREATE INDEX opendsr_requests_request ON opendsr_requests (request_id);

-- Facebook data-deletion callbacks: the app secret per tenant (sealed).
CREATE TABLE facebook_apps (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    app_id      TEXT NOT NULL,
    secret_box  TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

-- A Facebook deletion request's confirmation code, stored as its SHA-256.
CREATE TABLE facebook_deletions (
    code_hash   TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    request_id  TEXT NOT NULL REFERENCES erasure_requests (id),
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX facebook_deletions_request ON facebook_deletions (request_id);
