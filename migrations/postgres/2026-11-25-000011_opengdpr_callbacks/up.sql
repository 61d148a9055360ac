-- Requests that came in on the old OpenGDPR routes get their status
-- callbacks with the X-OpenGDPR-* headers, as the specification requires.
ALTER TABLE opendsr_requests ADD COLUMN opengdpr BOOLEAN NOT NULL DEFAULT false;
