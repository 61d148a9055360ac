-- Run once on the raw database after `lethe migrate`: the tenant the rows of
-- pg_submit.sql belong to, and the id function they use.
INSERT INTO tenants (id, name, approval_policy, contact_name, contact_email, locale, created_at, updated_at)
VALUES ('01900000-0000-7000-8000-00000000b001', 'bench raw', 'privacy_contact', NULL,
        'dpo@example.org', 'en', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc');

-- A 36-character id that sorts by time like lethe's UUIDv7s: microseconds
-- since the epoch (the transaction's start), the client, a random number.
-- Plain SQL, so the planner inlines it.
CREATE FUNCTION bench_id(c int, r bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 15, '0')
        || '-' || lpad(to_hex(c), 4, '0') || '-' || lpad(to_hex(r), 15, '0')
$$;
