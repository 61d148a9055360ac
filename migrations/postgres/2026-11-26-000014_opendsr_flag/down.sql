ALTER TABLE erasure_requests DROP COLUMN opendsr_linked;
