ALTER TABLE jobs DROP COLUMN locked_by;
ALTER TABLE tenants DROP COLUMN notify_subject;
ALTER TABLE erasure_requests DROP COLUMN delivery_failed_at;
ALTER TABLE erasure_requests DROP COLUMN escalated_at;
ALTER TABLE erasure_requests DROP COLUMN decision_explanation;
ALTER TABLE erasure_requests DROP COLUMN decision_code;
DROP INDEX erasure_requests_batch;
DROP TABLE approval_links;
