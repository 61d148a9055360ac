DROP TABLE jobs;
DROP TABLE audit_events;
DROP TABLE erasure_requests;
DROP TABLE api_keys;
DROP TABLE tenants;
