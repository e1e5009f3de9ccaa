-- Core schema: tenants, keys, staff users, campaigns, items, donations,
-- per-item total slots, idempotency records; row-level security on every
-- tenant table. Runs as the owner role (superuser or BYPASSRLS), which owns
-- every object; the API role `conectades_app` only gets the grants below.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'conectades_app') THEN
        CREATE ROLE conectades_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

-- The tenant of the current transaction, or NULL (then every policy hides every row).
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE TABLE tenant (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    rate_plan   text NOT NULL DEFAULT 'standard' CHECK (length(rate_plan) BETWEEN 1 AND 50),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_key (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    prefix        text NOT NULL UNIQUE,
    secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes        text[] NOT NULL
                  CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'keys']),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_key_tenant_idx ON api_key (tenant_id, created_at DESC, id DESC);

CREATE TABLE staff_user (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    username       text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@+-]{1,150}$'),
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, username)
);

-- Refresh tokens rotate: each use marks the token used and issues the next one of
-- the same family; presenting a used token again revokes the whole family.
CREATE TABLE refresh_token (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES staff_user (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_token_family_idx ON refresh_token (family_id);
CREATE INDEX refresh_token_user_idx ON refresh_token (user_id);

CREATE TABLE campaign (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$'),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    subtitle     text NOT NULL DEFAULT '' CHECK (length(subtitle) <= 300),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    image_url    text CHECK (length(image_url) <= 2000),
    categories   text[] NOT NULL DEFAULT '{}' CHECK (cardinality(categories) <= 10),
    location     text NOT NULL DEFAULT '' CHECK (length(location) <= 200),
    contact      text NOT NULL DEFAULT '' CHECK (length(contact) <= 200),
    starts_at    timestamptz,
    ends_at      timestamptz,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'closed')),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (tenant_id, slug),
    UNIQUE (tenant_id, id),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX campaign_tenant_recent_idx ON campaign (tenant_id, created_at DESC, id DESC);

CREATE TABLE campaign_item (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    campaign_id         uuid NOT NULL,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit                text NOT NULL CHECK (unit IN ('kg', 'unit', 'l', 'hour') OR unit ~ '^[A-Z]{3}$'),
    quantity_requested  bigint NOT NULL
                        CHECK (quantity_requested > 0 AND quantity_requested <= 1000000000),
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaign (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (campaign_id, id)
);
CREATE INDEX campaign_item_campaign_idx ON campaign_item (campaign_id, created_at, id);

CREATE TABLE donation (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL,
    campaign_id    uuid NOT NULL,
    item_id        uuid NOT NULL,
    quantity       bigint NOT NULL CHECK (quantity > 0 AND quantity <= 1000000000),
    donor_name     text NOT NULL DEFAULT '' CHECK (length(donor_name) <= 200),
    donor_contact  text NOT NULL DEFAULT '' CHECK (length(donor_contact) <= 200),
    anonymous      boolean NOT NULL DEFAULT false,
    message        text NOT NULL DEFAULT '' CHECK (length(message) <= 1000),
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'confirmed', 'delivered', 'cancelled')),
    source         text NOT NULL DEFAULT 'partner' CHECK (source IN ('partner', 'public')),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    confirmed_at   timestamptz,
    delivered_at   timestamptz,
    cancelled_at   timestamptz,
    -- No cascade: a campaign or item with donations cannot be deleted.
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaign (tenant_id, id),
    FOREIGN KEY (campaign_id, item_id) REFERENCES campaign_item (campaign_id, id)
);
CREATE INDEX donation_tenant_recent_idx ON donation (tenant_id, created_at DESC, id DESC);
CREATE INDEX donation_campaign_recent_idx ON donation (campaign_id, created_at DESC, id DESC);
CREATE INDEX donation_item_idx ON donation (item_id);

-- Exact per-item totals, spread over 16 slots so concurrent writers on one item
-- do not queue on one row; readers sum the slots. Maintained only by the
-- trigger below, in the same transaction as the donation change.
CREATE TABLE item_total_slot (
    tenant_id           uuid NOT NULL,
    item_id             uuid NOT NULL REFERENCES campaign_item (id) ON DELETE CASCADE,
    slot                smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    pending_quantity    bigint NOT NULL DEFAULT 0,
    pending_count       bigint NOT NULL DEFAULT 0,
    confirmed_quantity  bigint NOT NULL DEFAULT 0,
    confirmed_count     bigint NOT NULL DEFAULT 0,
    delivered_quantity  bigint NOT NULL DEFAULT 0,
    delivered_count     bigint NOT NULL DEFAULT 0,
    cancelled_quantity  bigint NOT NULL DEFAULT 0,
    cancelled_count     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, slot)
);

CREATE FUNCTION donation_apply_totals() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    slot_no smallint := floor(random() * 16)::smallint;
    old_status text;
    old_qty bigint := 0;
    new_status text;
    new_qty bigint := 0;
    row_item uuid;
    row_tenant uuid;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_status := OLD.status;
        old_qty := OLD.quantity;
        row_item := OLD.item_id;
        row_tenant := OLD.tenant_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_status := NEW.status;
        new_qty := NEW.quantity;
        row_item := NEW.item_id;
        row_tenant := NEW.tenant_id;
    END IF;
    IF TG_OP = 'UPDATE' AND old_status = new_status AND old_qty = new_qty
       AND OLD.item_id = NEW.item_id THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.item_id <> NEW.item_id THEN
        RAISE EXCEPTION 'a donation cannot move to another item';
    END IF;
    INSERT INTO item_total_slot AS t (
        tenant_id, item_id, slot,
        pending_quantity, pending_count, confirmed_quantity, confirmed_count,
        delivered_quantity, delivered_count, cancelled_quantity, cancelled_count)
    VALUES (
        row_tenant, row_item, slot_no,
        (CASE WHEN new_status = 'pending' THEN new_qty ELSE 0 END)
            - (CASE WHEN old_status = 'pending' THEN old_qty ELSE 0 END),
        (CASE WHEN new_status = 'pending' THEN 1 ELSE 0 END)
            - (CASE WHEN old_status = 'pending' THEN 1 ELSE 0 END),
        (CASE WHEN new_status = 'confirmed' THEN new_qty ELSE 0 END)
            - (CASE WHEN old_status = 'confirmed' THEN old_qty ELSE 0 END),
        (CASE WHEN new_status = 'confirmed' THEN 1 ELSE 0 END)
            - (CASE WHEN old_status = 'confirmed' THEN 1 ELSE 0 END),
        (CASE WHEN new_status = 'delivered' THEN new_qty ELSE 0 END)
            - (CASE WHEN old_status = 'delivered' THEN old_qty ELSE 0 END),
        (CASE WHEN new_status = 'delivered' THEN 1 ELSE 0 END)
            - (CASE WHEN old_status = 'delivered' THEN 1 ELSE 0 END),
        (CASE WHEN new_status = 'cancelled' THEN new_qty ELSE 0 END)
            - (CASE WHEN old_status = 'cancelled' THEN old_qty ELSE 0 END),
        (CASE WHEN new_status = 'cancelled' THEN 1 ELSE 0 END)
            - (CASE WHEN old_status = 'cancelled' THEN 1 ELSE 0 END))
    ON CONFLICT (item_id, slot) DO UPDATE SET
        pending_quantity = t.pending_quantity + EXCLUDED.pending_quantity,
        pending_count = t.pending_count + EXCLUDED.pending_count,
        confirmed_quantity = t.confirmed_quantity + EXCLUDED.confirmed_quantity,
        confirmed_count = t.confirmed_count + EXCLUDED.confirmed_count,
        delivered_quantity = t.delivered_quantity + EXCLUDED.delivered_quantity,
        delivered_count = t.delivered_count + EXCLUDED.delivered_count,
        cancelled_quantity = t.cancelled_quantity + EXCLUDED.cancelled_quantity,
        cancelled_count = t.cancelled_count + EXCLUDED.cancelled_count;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER donation_totals
    AFTER INSERT OR UPDATE OF status, quantity, item_id OR DELETE ON donation
    FOR EACH ROW EXECUTE FUNCTION donation_apply_totals();

-- Per-item totals summed over the slots (security_invoker: RLS of the caller applies).
CREATE VIEW item_totals WITH (security_invoker = true) AS
SELECT item_id,
       sum(pending_quantity)::bigint   AS pending_quantity,
       sum(pending_count)::bigint      AS pending_count,
       sum(confirmed_quantity)::bigint AS confirmed_quantity,
       sum(confirmed_count)::bigint    AS confirmed_count,
       sum(delivered_quantity)::bigint AS delivered_quantity,
       sum(delivered_count)::bigint    AS delivered_count,
       sum(cancelled_quantity)::bigint AS cancelled_quantity,
       sum(cancelled_count)::bigint    AS cancelled_count
FROM item_total_slot
GROUP BY item_id;

CREATE TABLE idempotency_record (
    tenant_id    uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  bytea NOT NULL,
    status_code  smallint NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_record_created_idx ON idempotency_record (created_at);

-- Row-level security: ENABLE + FORCE on every tenant table.
ALTER TABLE tenant ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant
    USING (id = app_current_tenant()) WITH CHECK (id = app_current_tenant());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_key', 'staff_user', 'refresh_token', 'campaign',
                             'campaign_item', 'donation', 'item_total_slot',
                             'idempotency_record']
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

-- Credential lookups happen before the tenant is known, so they go through
-- narrow SECURITY DEFINER functions instead of cross-tenant table access.
CREATE FUNCTION auth_api_key(p_prefix text)
    RETURNS TABLE (key_id uuid, tenant_id uuid, secret_hash bytea, scopes text[],
                   expires_at timestamptz, revoked_at timestamptz, tenant_status text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT k.id, k.tenant_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at, t.status
        FROM api_key k JOIN tenant t ON t.id = k.tenant_id
        WHERE k.prefix = p_prefix
    $$;

-- Records last use at most once a minute per key, so auth stays read-mostly.
CREATE FUNCTION touch_api_key(p_key_id uuid) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE api_key SET last_used_at = now()
        WHERE id = p_key_id
          AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    $$;

REVOKE ALL ON FUNCTION auth_api_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION touch_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_api_key(text) TO conectades_app;
GRANT EXECUTE ON FUNCTION touch_api_key(uuid) TO conectades_app;

GRANT SELECT ON tenant TO conectades_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_key, staff_user, refresh_token, campaign,
    campaign_item, donation, idempotency_record TO conectades_app;
GRANT SELECT, INSERT, UPDATE ON item_total_slot TO conectades_app;
GRANT SELECT ON item_totals TO conectades_app;
