-- Webhooks (issue 16): a tenant's endpoints and one delivery per event × endpoint,
-- delivered by the worker process (`conectades worker`, worker/webhooks.py) per the
-- Standard Webhooks specification.
--
-- Deliveries are created by a trigger on `event` in the transaction that writes the
-- event, so a committed change always has its deliveries: nothing can be lost
-- between the commit and the worker. The worker claims due deliveries through
-- `webhook_claim` (FOR UPDATE SKIP LOCKED, a lease), and writes each outcome back
-- in a tenant transaction like the API does (row-level security applies to it).

CREATE TABLE webhook_endpoint (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                   uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description                 text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 50),
    enabled                     boolean NOT NULL DEFAULT true,
    -- The signing key (the bytes after `whsec_`, base64-decoded). Kept as is: an
    -- HMAC needs the key itself, so it cannot be hashed like an API key.
    secret                      bytea NOT NULL CHECK (length(secret) BETWEEN 24 AND 64),
    -- After a rotation the previous key keeps signing alongside the new one until
    -- `previous_secret_expires_at` (receivers switch keys without losing messages).
    previous_secret             bytea,
    previous_secret_expires_at  timestamptz,
    -- Failure state: since when no attempt succeeded, and how many deliveries in a
    -- row died (all retries spent). The worker disables the endpoint when
    -- `consecutive_dead` reaches its threshold (docs/webhooks.md).
    failing_since               timestamptz,
    consecutive_dead            integer NOT NULL DEFAULT 0,
    disabled_at                 timestamptz,
    disabled_reason             text CHECK (length(disabled_reason) <= 500),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoint_tenant_idx ON webhook_endpoint (tenant_id, created_at DESC, id DESC);
-- The fan-out trigger's lookup: the tenant's enabled endpoints.
CREATE INDEX webhook_endpoint_enabled_idx ON webhook_endpoint (tenant_id) WHERE enabled;

CREATE TABLE webhook_delivery (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id        uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    -- The Standard Webhooks `webhook-id`: the same on every attempt and on a manual
    -- retry, so receivers can deduplicate.
    message_id       text NOT NULL UNIQUE
                     DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    resource_id      uuid,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when a worker claims the delivery; a worker that dies mid-delivery leaves
    -- it to expire, and the delivery is claimed again (same webhook-id).
    leased_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    response_status  integer,
    latency_ms       integer,
    last_error       text CHECK (length(last_error) <= 500),
    UNIQUE (endpoint_id, event_id)
);
-- The claim: due pending deliveries, oldest first.
CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (next_attempt_at, seq)
    WHERE status = 'pending';
-- Order per resource: an earlier pending delivery for the same endpoint and resource.
CREATE INDEX webhook_delivery_order_idx ON webhook_delivery (endpoint_id, resource_id, seq)
    WHERE status = 'pending';
-- GET /api/v1/webhooks/{id}/deliveries, newest first.
CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id, seq DESC);
CREATE INDEX webhook_delivery_event_idx ON webhook_delivery (event_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoint', 'webhook_delivery']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = app_current_tenant()) '
            'WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

-- Fan-out, in the event's own transaction and as its writer (row-level security
-- applies: only the event's tenant's endpoints are seen); a tenant without endpoints
-- pays one index probe per event. No NOTIFY here: PostgreSQL serializes the commits
-- of every transaction that notified (one lock for the whole cluster, held through
-- the commit's WAL flush); at 200 donations/s with it, 12-15 % of donations failed
-- (docs/decisions.md, 7). The worker polls instead (every 0.25 s, an index probe
-- when nothing is due).
CREATE FUNCTION webhook_fan_out() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO webhook_delivery (tenant_id, endpoint_id, event_id, resource_id)
    SELECT NEW.tenant_id, e.id, NEW.id, NEW.resource_id
    FROM webhook_endpoint e
    WHERE e.tenant_id = NEW.tenant_id AND e.enabled AND NEW.type = ANY (e.event_types);
    RETURN NULL;
END
$$;
CREATE TRIGGER event_webhook_fan_out AFTER INSERT ON event
    FOR EACH ROW EXECUTE FUNCTION webhook_fan_out();

-- The worker's claim, across tenants (so SECURITY DEFINER, like auth_api_key): up to
-- `p_limit` due deliveries of enabled endpoints, each the earliest pending one for
-- its endpoint and resource (a later change to a resource is not sent while an
-- earlier one is still pending), leased for `p_lease` seconds, with what sending
-- needs. Everything else the worker does runs in tenant transactions.
CREATE FUNCTION webhook_claim(p_limit integer, p_lease double precision)
    RETURNS TABLE (delivery_id uuid, tenant_id uuid, endpoint_id uuid, message_id text,
                   attempts integer, url text, secret bytea, previous_secret bytea,
                   event_type text, occurred_at timestamptz, data jsonb)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        WITH due AS (
            SELECT d.id
            FROM webhook_delivery d
            WHERE d.status = 'pending'
              AND d.next_attempt_at <= now()
              AND (d.leased_until IS NULL OR d.leased_until <= now())
              AND EXISTS (SELECT 1 FROM webhook_endpoint e
                          WHERE e.id = d.endpoint_id AND e.enabled)
              AND NOT EXISTS (SELECT 1 FROM webhook_delivery p
                              WHERE p.endpoint_id = d.endpoint_id
                                AND p.resource_id = d.resource_id
                                AND p.status = 'pending'
                                AND p.seq < d.seq)
            ORDER BY d.next_attempt_at, d.seq
            LIMIT p_limit
            FOR UPDATE OF d SKIP LOCKED
        ), claimed AS (
            UPDATE webhook_delivery d
            SET leased_until = now() + make_interval(secs => p_lease),
                attempts = d.attempts + 1,
                last_attempt_at = now()
            FROM due
            WHERE d.id = due.id
            RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_id, d.message_id, d.attempts
        )
        SELECT c.id, c.tenant_id, c.endpoint_id, c.message_id, c.attempts, e.url, e.secret,
               CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END,
               ev.type, ev.occurred_at, ev.data
        FROM claimed c
        JOIN webhook_endpoint e ON e.id = c.endpoint_id
        JOIN event ev ON ev.id = c.event_id
    $$;
REVOKE ALL ON FUNCTION webhook_claim(integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook_claim(integer, double precision) TO conectades_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoint TO conectades_app;
GRANT SELECT, INSERT, UPDATE ON webhook_delivery TO conectades_app;
