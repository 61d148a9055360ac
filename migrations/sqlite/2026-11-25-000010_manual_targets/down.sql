DROP TABLE target_links;
ALTER TABLE target_calls DROP COLUMN confirmed_by;
ALTER TABLE erasure_targets DROP COLUMN owner_email;
ALTER TABLE erasure_targets DROP COLUMN kind;
