-- Approval links: only the SHA-256 of the secret is stored.
CREATE TABLE approval_links (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    token_hash  TEXT NOT NULL UNIQUE,
    -- One request, or every request of a batch.
    request_id  TEXT REFERENCES erasure_requests (id),
    batch_id    TEXT,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    voided_at   TIMESTAMP,
    CHECK ((request_id IS NULL) <> (batch_id IS NULL))
);
CREATE INDEX approval_links_request ON approval_links (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX approval_links_batch ON approval_links (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX erasure_requests_batch ON erasure_requests (batch_id) WHERE batch_id IS NOT NULL;

-- The privacy contact's decision; the explanation is personal data of a kind
-- and is scrubbed with the rest.
ALTER TABLE erasure_requests ADD COLUMN decision_code TEXT;
ALTER TABLE erasure_requests ADD COLUMN decision_explanation TEXT;
-- Set when an undecided request nears its deadline and support must act.
ALTER TABLE erasure_requests ADD COLUMN escalated_at TIMESTAMP;
-- Set when the approval email could not be delivered at all.
ALTER TABLE erasure_requests ADD COLUMN delivery_failed_at TIMESTAMP;

-- Tell the data subject (receipt, rejection, completion) when they gave an email.
ALTER TABLE tenants ADD COLUMN notify_subject BOOLEAN NOT NULL DEFAULT 0;

-- Which worker holds a job's lease (released on graceful shutdown).
ALTER TABLE jobs ADD COLUMN locked_by TEXT;
