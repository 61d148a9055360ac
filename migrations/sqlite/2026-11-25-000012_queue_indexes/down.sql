DROP INDEX erasure_requests_state_newest;
DROP INDEX erasure_requests_state_updated;
DROP INDEX erasure_requests_state_received;
DROP INDEX erasure_requests_open_state_tenant;
DROP INDEX erasure_requests_open_due_id;
CREATE INDEX erasure_requests_open_due ON erasure_requests (due_at)
    WHERE state IN ('pending', 'awaiting_approval', 'erasing', 'failed');
