-- Deploy orders of the `agent` rollout provider: one per host of a rollout, in batches. The
-- order names the version only; each host's agent runs the command of its own configuration.
-- state: 'waiting' (a later batch), 'pending' (released), 'running' (taken by the agent),
-- 'succeeded', 'failed', 'refused' (the agent would not run it), 'cancelled'.
CREATE TABLE agent_deploys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id BIGINT NOT NULL,
    host TEXT NOT NULL,
    batch BIGINT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    exit_code BIGINT,
    -- why it was refused or failed, in the agent's words
    reason TEXT NOT NULL DEFAULT '',
    -- the last lines of the command's output
    output TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    released_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX agent_deploys_rollout ON agent_deploys (rollout_id, batch);
CREATE INDEX agent_deploys_host ON agent_deploys (host, state);
