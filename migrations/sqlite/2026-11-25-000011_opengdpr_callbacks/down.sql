ALTER TABLE opendsr_requests DROP COLUMN opengdpr;
