ALTER TABLE erasure_requests DROP COLUMN scrubbed_at;
ALTER TABLE erasure_requests DROP COLUMN erased_at;
ALTER TABLE erasure_requests DROP COLUMN approved_at;
ALTER TABLE tenants DROP COLUMN callback_secret_box;
DROP TABLE target_calls;
DROP TABLE erasure_targets;
