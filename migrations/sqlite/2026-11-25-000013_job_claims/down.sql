CREATE INDEX target_calls_request ON target_calls (request_id);
