CREATE INDEX target_calls_request ON target_calls (request_id);
DROP FUNCTION lethe_claim_jobs(TEXT, TEXT[], TIMESTAMP, TIMESTAMP, BIGINT);
