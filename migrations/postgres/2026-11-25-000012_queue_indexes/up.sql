-- The support queue at a million requests (bench/queue). Open requests are a
-- small share of all; these partial indexes hold only them, so they stay
-- small as the history grows and cost nothing once a request closes. Their
-- condition is written exactly as the queries write it
-- (store::support::queue::OPEN_SQL): SQLite uses a partial index only when
-- the query repeats the index's condition.

-- Overdue and due-soon pages and counts: ordered by (due_at, id) like the
-- queue, so a page is a range scan however many requests there are.
DROP INDEX erasure_requests_open_due;
CREATE INDEX erasure_requests_open_due_id ON erasure_requests (due_at, id)
    WHERE state IN ('pending', 'awaiting_approval', 'erasing', 'failed');
-- The overview's counts by state and tenant, read from the index alone.
CREATE INDEX erasure_requests_open_state_tenant ON erasure_requests (state, tenant_id, due_at)
    WHERE state IN ('pending', 'awaiting_approval', 'erasing', 'failed');
-- The overview's lists: waiting longest for approval, most recently failed.
-- Whole-table indexes: a partial one over a single state was implied by
-- `state = 'awaiting_approval'` in other queries, and PostgreSQL then
-- counted that state twice and misjudged their plans.
CREATE INDEX erasure_requests_state_received ON erasure_requests (state, received_at, id);
CREATE INDEX erasure_requests_state_updated ON erasure_requests (state, updated_at, id);
-- One state, newest first (the queue's other order). Any state, so that a
-- plain `state = ?` finds it.
CREATE INDEX erasure_requests_state_newest ON erasure_requests (state, id);
