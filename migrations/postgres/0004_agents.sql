-- Agents, registered by their first heartbeat and keyed by host name.
CREATE TABLE agents (
    host TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    -- the last AgentHeartbeat as JSON
    report TEXT NOT NULL
);
