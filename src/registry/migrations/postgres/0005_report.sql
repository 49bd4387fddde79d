-- keyward registry (PostgreSQL), schema version 5: the fleet report
-- (`registry report`, `/metrics`) selects events by kind, then by time.
CREATE INDEX events_kind_created ON events(kind, created_at);
