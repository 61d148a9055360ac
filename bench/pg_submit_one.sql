-- pgbench script: the writes of one lethe submission (privacy_contact policy)
-- as one statement, the way lethe's PostgreSQL store sends them
-- (src/store/requests/one_statement.rs): the request row with ON CONFLICT DO
-- NOTHING, then its two audit events and its two outbox jobs from arrays, for the
-- row it returned. No BEGIN/COMMIT: one statement is atomic. Same column
-- values and id shapes as pg_submit.sql. Run with -M prepared.
\set r random(1, 9007199254740991)
\set a1 random(1, 9007199254740991)
\set a2 random(1, 9007199254740991)
\set j random(1, 9007199254740991)
WITH req AS (INSERT INTO erasure_requests (id, tenant_id, subject_hash, subject_id, subject_email,
    initiator, reason, callback_url, state, batch_id, idempotency_key, fingerprint,
    received_at, due_at, updated_at, audit_seq, audit_head)
  VALUES (bench_id(:client_id::int, :r::bigint), '01900000-0000-7000-8000-00000000b001',
    md5(:r::text) || md5(:client_id::text || 's'), 'bench-' || :client_id::text || '-' || :r::text, NULL,
    'subject', NULL, NULL, 'awaiting_approval', NULL, NULL, md5(:r::text || 'f') || md5('f'),
    now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' + interval '1 month', now() AT TIME ZONE 'utc',
    2, md5(:r::text || 'h2') || md5('h2'))
  ON CONFLICT DO NOTHING RETURNING id, tenant_id),
events AS (INSERT INTO audit_events (id, tenant_id, request_id, seq, from_state, to_state, event,
    actor_kind, actor_id, detail, at, prev_hash, hash)
  SELECT e.id, req.tenant_id, req.id, e.seq, e.from_state, e.to_state, e.event, e.actor_kind,
    e.actor_id, e.detail, e.at, e.prev_hash, e.hash
  FROM req, unnest(
    ARRAY[bench_id(:client_id::int, :a1::bigint), bench_id(:client_id::int, :a2::bigint)],
    ARRAY[1, 2]::bigint[],
    ARRAY[NULL, 'pending']::text[],
    ARRAY['pending', 'awaiting_approval'],
    ARRAY['submit', 'request_approval'],
    ARRAY['api_key', 'system'],
    ARRAY['01900000-0000-7000-8000-00000000b002', 'policy'],
    ARRAY[NULL, '{"approval_policy":"privacy_contact"}']::text[],
    ARRAY[now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'],
    ARRAY[repeat('0', 64), md5(:r::text || 'h1') || md5('h1')],
    ARRAY[md5(:r::text || 'h1') || md5('h1'), md5(:r::text || 'h2') || md5('h2')])
    AS e(id, seq, from_state, to_state, event, actor_kind, actor_id, detail, at, prev_hash, hash)),
queued AS (INSERT INTO jobs (id, tenant_id, request_id, kind, payload, run_at, attempts,
    max_attempts, created_at, dead)
  SELECT j.id, req.tenant_id, req.id, j.kind, j.payload, j.run_at, 0, j.max_attempts,
    j.created_at, FALSE
  FROM req, unnest(
    ARRAY[bench_id(:client_id::int, :j::bigint), bench_id(:client_id::int, :j::bigint + 1)],
    ARRAY['send_approval_email', 'approval_follow_up'],
    ARRAY['{}', jsonb_build_object('since', now(), 'reminders_sent', 0)::text],
    ARRAY[now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' + interval '3 days'],
    ARRAY[12, 12],
    ARRAY[now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'])
    AS j(id, kind, payload, run_at, max_attempts, created_at))
SELECT 1 FROM req;
