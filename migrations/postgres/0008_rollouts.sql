-- Rollouts: the services (seeded from `[[services]]`), their environments (each a rollout
-- target: a provider with parameters and an optional sealed credential, an approval rule,
-- freeze windows, the current and previous good versions), the health gates judged after a
-- deploy, the rollouts themselves and the timeline of each.
CREATE TABLE services (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE service_environments (
    service TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    current_version TEXT,
    previous_good_version TEXT,
    -- 'buildbot' or 'webhook' (more providers later)
    provider TEXT NOT NULL,
    -- the provider's parameters as a JSON object
    provider_params TEXT NOT NULL,
    -- the integration holding the provider's credential, if it needs one
    integration_id BIGINT,
    approval_required BIGINT NOT NULL DEFAULT 0,
    -- a JSON array of {start, end, reason}
    freeze_windows TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (service, name)
);

CREATE TABLE rollout_gates (
    id BIGSERIAL PRIMARY KEY,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    name TEXT NOT NULL,
    -- 'promql' or 'log'
    kind TEXT NOT NULL,
    query TEXT NOT NULL,
    -- the healthy condition: value <comparator> threshold
    comparator TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    interval_seconds BIGINT NOT NULL,
    window_seconds BIGINT NOT NULL,
    -- consecutive failing evaluations tolerated; one more fails the gate
    failures_allowed BIGINT NOT NULL,
    dry_run BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (service, environment) REFERENCES service_environments (service, name) ON DELETE CASCADE
);
CREATE INDEX rollout_gates_environment ON rollout_gates (service, environment);

CREATE TABLE rollouts (
    id BIGSERIAL PRIMARY KEY,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    -- 'deploy' or 'rollback'
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    from_version TEXT,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    -- who requested it, stably (user:<id> or token:<id>), so that nobody approves their own
    requester_key TEXT NOT NULL,
    approved_by TEXT,
    -- set just before the provider is called: a rollout with this and no run was cut off
    -- while triggering, and is never triggered again
    trigger_started_at BIGINT,
    run_id TEXT,
    run_url TEXT,
    analysis_started_at BIGINT,
    -- the gates' evaluation state as JSON (consecutive failures, next evaluation)
    analysis TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    -- the rollout an automatic rollback undoes
    parent_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- One rollout at a time per service and environment.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (service, environment)
    WHERE state NOT IN ('succeeded', 'failed', 'rolled_back', 'aborted');
CREATE INDEX rollouts_newest ON rollouts (service, environment, id);
CREATE INDEX rollouts_state ON rollouts (state);

CREATE TABLE rollout_events (
    id BIGSERIAL PRIMARY KEY,
    rollout_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    -- a state, or an event such as 'gate' or 'callback'
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX rollout_events_rollout ON rollout_events (rollout_id, id);
