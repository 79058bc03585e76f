-- The caller (`token:<id>` or `user:<id>`) that registered each agent: a host name is bound
-- to it, so that another token cannot overwrite that host's reports.
ALTER TABLE agents ADD COLUMN registered_by TEXT NOT NULL DEFAULT '';
