-- The events outbox (issue 16): one row per change a partner may want to hear about,
-- written by the API in the same transaction as the change itself, so an event
-- exists exactly when its change committed. The events feed
-- (GET /api/v1/events) and the webhook deliveries read from here.
--
-- Ordering. `seq` alone cannot be a cursor: it is taken at insert time, and a
-- transaction that took seq 10 can commit after one that took seq 11 — a reader that
-- saw 11 and moved its cursor past it would never see 10. So every row also keeps its
-- transaction id (`xid`), the feed only shows rows whose transaction is older than
-- every transaction still running (`xid < pg_snapshot_xmin(pg_current_snapshot())`),
-- and the cursor is (xid, seq). A row that becomes visible later always has a larger
-- xid than every row already shown, so no cursor ever skips it. The price: a long
-- transaction holds the feed back while it runs (rows are hidden, never lost).
CREATE TABLE event (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id      uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    type           text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    resource_type  text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 50),
    resource_id    uuid,
    occurred_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    data           jsonb NOT NULL
);
CREATE INDEX event_tenant_order_idx ON event (tenant_id, xid, seq);
CREATE INDEX event_tenant_type_order_idx ON event (tenant_id, type, xid, seq);
CREATE INDEX event_occurred_idx ON event (occurred_at);

ALTER TABLE event ENABLE ROW LEVEL SECURITY;
ALTER TABLE event FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- The API writes and reads events; it never changes one (pruning is the operator's).
GRANT SELECT, INSERT ON event TO conectades_app;
