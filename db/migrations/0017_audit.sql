-- The audit log (issue 16, part 3): who did what, when, from where, and how it ended.
-- One row per write through the partner API (api/audit.py, written after the response
-- is built, in a short transaction of its own) and per state-changing operator CLI
-- command (admin/runtime.py: audit). Never request bodies, tokens, passwords,
-- Authorization headers or donor contacts: only the columns below.
--
-- tenant_id is NULL for an operator's act on the whole database (db migrate/prune/
-- restore/backup, seed, a deleted tenant's own deletion row): row-level security
-- hides those rows from the API (NULL never equals the current tenant), and the API
-- role cannot write one (WITH CHECK), so only operators see and write them.
CREATE TABLE audit_log (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid REFERENCES tenant (id) ON DELETE CASCADE,
    occurred_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind     text NOT NULL CHECK (actor_kind IN ('api_key', 'staff_user', 'cli', 'public')),
    -- The API key's or staff user's id; NULL for cli and public.
    actor_id       uuid,
    -- A key's public prefix, a username, the OS user: never a secret.
    actor_display  text NOT NULL DEFAULT '' CHECK (length(actor_display) <= 200),
    action         text NOT NULL
                   CHECK (action ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$' AND length(action) <= 100),
    resource_type  text NOT NULL CHECK (resource_type ~ '^[a-z][a-z0-9_]{0,49}$'),
    resource_id    uuid,
    -- The request (NULL for the CLI): method, path without the query string, the
    -- client's address as the edge saw it, the request id echoed in X-Request-ID.
    method         text CHECK (method IN ('POST', 'PUT', 'PATCH', 'DELETE')),
    path           text CHECK (length(path) <= 500),
    client_ip      inet,
    request_id     text CHECK (length(request_id) <= 128),
    -- The HTTP status (NULL for the CLI) and whether the act succeeded.
    status         smallint CHECK (status BETWEEN 100 AND 599),
    success        boolean NOT NULL,
    -- Counts and names an operator's command reports (never personal data).
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK (tenant_id IS NOT NULL OR actor_kind = 'cli')
);
-- The API's reads: newest first, per tenant, optionally by actor or resource.
CREATE INDEX audit_log_tenant_order_idx ON audit_log (tenant_id, occurred_at, id);
CREATE INDEX audit_log_tenant_actor_idx ON audit_log (tenant_id, actor_id, occurred_at, id)
    WHERE actor_id IS NOT NULL;
CREATE INDEX audit_log_tenant_resource_idx ON audit_log (tenant_id, resource_id, occurred_at, id)
    WHERE resource_id IS NOT NULL;
-- Pruning by age (`conectades db prune`) and the operator's listing across tenants.
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at, id);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- Append-only for the API: it records and reads, never changes or removes a row.
GRANT SELECT, INSERT ON audit_log TO conectades_app;
