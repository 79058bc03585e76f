-- Alert rules, the alert instances they produce (one per rule and label set), the timeline of
-- each, and the notifications to send (an outbox: a row is written with the state change that
-- causes it, so that a restart neither loses nor repeats one).
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- the AlertRuleSpec as JSON
    spec TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_evaluation BIGINT,
    last_error TEXT,
    last_duration_ms BIGINT
);

CREATE TABLE alert_instances (
    fingerprint TEXT PRIMARY KEY,
    -- 0 for alerts that Prometheus or an Alertmanager sent
    rule_id BIGINT NOT NULL,
    -- 'rule' (Vigil's own), 'prometheus' (the Alertmanager API), 'alertmanager' (its webhook)
    source TEXT NOT NULL,
    -- alerts sent from outside resolve at this time unless sent again
    ends_at BIGINT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    active_since BIGINT NOT NULL,
    -- the last evaluation at which the condition held
    last_active BIGINT NOT NULL,
    firing_since BIGINT,
    resolved_at BIGINT,
    episode BIGINT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at BIGINT,
    acknowledgement_note TEXT,
    -- repeats sent in this episode, and whether it was escalated
    repeats BIGINT NOT NULL DEFAULT 0,
    escalated BIGINT NOT NULL DEFAULT 0,
    -- whether this episode's firing notification was written (not while silenced)
    notified BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alert_instances_rule ON alert_instances (rule_id);
CREATE INDEX alert_instances_state ON alert_instances (state);

CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX alert_events_fingerprint ON alert_events (fingerprint, id);

CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    episode BIGINT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    -- tells repeats of one episode apart
    sequence BIGINT NOT NULL,
    -- the WebhookBody as JSON, as it was when the notification was decided
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    UNIQUE (fingerprint, episode, channel, event, sequence)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
CREATE INDEX alert_deliveries_fingerprint ON alert_deliveries (fingerprint, id);

-- Silences: matchers (JSON), a time span, who and why. Expiring one ends it now; it stays.
CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- Work that one node at a time does (the alert evaluator): the holder renews before it
-- expires; the token grows at each change of holder.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
