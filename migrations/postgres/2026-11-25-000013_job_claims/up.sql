-- The job claim: lease up to p_limit due jobs of p_kinds, the longest due
-- first, skipping those another claimer is taking (store::jobs::claim_many).
-- It must walk jobs_due in run_at order and stop at its LIMIT. Left to its
-- estimates, the planner reads a queue table's statistics as of the last
-- ANALYZE: after a burst of submissions it expected a handful of due jobs
-- and sorted a bitmap scan of all 6,000 instead, 3-9 ms a claim (measured
-- in the pipeline benchmark) against 0.2 ms for the index walk, and more
-- the longer the backlog. With bitmap and sequential scans off for this one
-- statement, the index walk is the only plan left. PL/pgSQL keeps the plan
-- for the session, so a claim is planned once per connection.
CREATE FUNCTION lethe_claim_jobs(p_worker TEXT, p_kinds TEXT[], p_now TIMESTAMP,
                                 p_lease_until TIMESTAMP, p_limit BIGINT)
RETURNS SETOF jobs
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    WITH due AS MATERIALIZED (
        SELECT j.id FROM jobs j
         WHERE j.finished_at IS NULL AND j.run_at <= p_now
           AND (j.lease_until IS NULL OR j.lease_until < p_now)
           AND j.kind = ANY (p_kinds)
         ORDER BY j.run_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED)
    UPDATE jobs SET lease_until = p_lease_until, attempts = jobs.attempts + 1,
                    locked_by = p_worker
      FROM due WHERE jobs.id = due.id
    RETURNING jobs.*;
END
$$;

-- The leading column of UNIQUE (request_id, target_id) serves every lookup
-- by request; this index only cost a second insert per call.
DROP INDEX target_calls_request;
