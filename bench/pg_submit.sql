-- pgbench script: the writes of one lethe submission (privacy_contact policy),
-- as lethe's store sends them, in one transaction: the request row (with
-- ON CONFLICT DO NOTHING), both audit events in one multi-row insert, and the
-- two outbox jobs (approval email; the follow-up that reminds, then
-- escalates) in one. Ids are time-ordered like lethe's UUIDv7s (see bench_id() in
-- pg_setup.sql); hashes are 64 hex characters like lethe's.
-- Run with -M prepared (diesel uses prepared statements too).
\set r random(1, 9007199254740991)
\set a1 random(1, 9007199254740991)
\set a2 random(1, 9007199254740991)
\set j random(1, 9007199254740991)
BEGIN;
INSERT INTO erasure_requests (id, tenant_id, subject_hash, subject_id, subject_email,
    initiator, reason, callback_url, state, batch_id, idempotency_key, fingerprint,
    received_at, due_at, updated_at, closed_at, audit_seq, audit_head)
VALUES (bench_id(:client_id::int, :r::bigint), '01900000-0000-7000-8000-00000000b001',
    md5(:r::text) || md5(:client_id::text || 's'), 'bench-' || :client_id::text || '-' || :r::text, NULL,
    'subject', NULL, NULL, 'awaiting_approval', NULL, NULL, md5(:r::text || 'f') || md5('f'),
    now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' + interval '1 month', now() AT TIME ZONE 'utc',
    NULL, 2, md5(:r::text || 'h2') || md5('h2'))
ON CONFLICT DO NOTHING;
INSERT INTO audit_events (id, tenant_id, request_id, seq, from_state, to_state, event,
    actor_kind, actor_id, detail, at, prev_hash, hash)
VALUES (bench_id(:client_id::int, :a1::bigint), '01900000-0000-7000-8000-00000000b001',
        bench_id(:client_id::int, :r::bigint), 1, NULL, 'pending', 'submit',
        'api_key', '01900000-0000-7000-8000-00000000b002', NULL, now() AT TIME ZONE 'utc',
        repeat('0', 64), md5(:r::text || 'h1') || md5('h1')),
       (bench_id(:client_id::int, :a2::bigint), '01900000-0000-7000-8000-00000000b001',
        bench_id(:client_id::int, :r::bigint), 2, 'pending', 'awaiting_approval', 'request_approval',
        'system', 'policy', '{"approval_policy":"privacy_contact"}', now() AT TIME ZONE 'utc',
        md5(:r::text || 'h1') || md5('h1'), md5(:r::text || 'h2') || md5('h2'));
INSERT INTO jobs (id, tenant_id, request_id, kind, payload, run_at, attempts, max_attempts,
    lease_until, last_error, created_at, finished_at, dead)
VALUES (bench_id(:client_id::int, :j::bigint), '01900000-0000-7000-8000-00000000b001',
        bench_id(:client_id::int, :r::bigint), 'send_approval_email', '{}',
        now() AT TIME ZONE 'utc', 0, 12, NULL, NULL, now() AT TIME ZONE 'utc', NULL, false),
       (bench_id(:client_id::int, :j::bigint + 1), '01900000-0000-7000-8000-00000000b001',
        bench_id(:client_id::int, :r::bigint), 'approval_follow_up',
        jsonb_build_object('since', now(), 'reminders_sent', 0)::text,
        now() AT TIME ZONE 'utc' + interval '3 days', 0, 12, NULL, NULL, now() AT TIME ZONE 'utc', NULL, false);
END;
