-- Notifications of alerts grouped by a route's labels are sent together: one message per
-- channel and group, the first after the group's wait, the next at least the group's interval
-- after the one before. Ungrouped notifications have the empty group key.
ALTER TABLE alert_deliveries ADD COLUMN group_key TEXT NOT NULL DEFAULT '';
-- the group's labels, as a JSON object
ALTER TABLE alert_deliveries ADD COLUMN group_labels TEXT NOT NULL DEFAULT '{}';
-- milliseconds
ALTER TABLE alert_deliveries ADD COLUMN group_interval BIGINT NOT NULL DEFAULT 0;
CREATE INDEX alert_deliveries_group ON alert_deliveries (channel, group_key, status);

-- When alerts fired and resolved, for the annotations on charts.
CREATE INDEX alert_events_at ON alert_events (at);
