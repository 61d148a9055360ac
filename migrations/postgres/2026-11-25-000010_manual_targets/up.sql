-- Targets with no API (a mail archive, a paper file, a vendor who works by
-- email): their owner is emailed a link and confirms the erasure by hand.
ALTER TABLE erasure_targets ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE erasure_targets ADD COLUMN owner_email TEXT;

-- Who confirmed at a target: the target's signature, or the owner of a
-- manual target (their address at the time of confirming).
ALTER TABLE target_calls ADD COLUMN confirmed_by TEXT;

-- Links emailed to a manual target's owner. Only the SHA-256 of each link's
-- secret is kept; every link of an open call works until the call is settled.
CREATE TABLE target_links (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    request_id   TEXT NOT NULL REFERENCES erasure_requests (id),
    target_id    TEXT NOT NULL REFERENCES erasure_targets (id),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP
);
CREATE INDEX target_links_call ON target_links (request_id, target_id);
