DROP TABLE facebook_deletions;
DROP TABLE facebook_apps;
DROP TABLE opendsr_requests;
