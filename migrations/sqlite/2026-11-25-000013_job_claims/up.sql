-- The leading column of UNIQUE (request_id, target_id) serves every lookup
-- by request; this index only cost a second insert per call.
DROP INDEX target_calls_request;
