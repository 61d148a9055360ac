-- Whether an OpenDSR request is mapped to this erasure request. Set, under
-- the request's row lock, in the write that maps one: a transition asks
-- opendsr_requests for status callbacks only when it is set, and a
-- compare-and-set write planned on the row without it misses once it is.
ALTER TABLE erasure_requests ADD COLUMN opendsr_linked BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE erasure_requests SET opendsr_linked = TRUE
 WHERE id IN (SELECT request_id FROM opendsr_requests);
