-- Pledges stop NOTIFYing the worker (0019 woke it on the `email` channel from the
-- pledge's transaction). A NOTIFY takes one lock for the whole database at commit,
-- so every pledge's commit waited for the previous one's: on this machine 16
-- clients committing an insert managed 11,000 transactions/s, and 3,500 with a
-- NOTIFY in each (pgbench, 2026-12-03; docs/decisions.md, 7, found the same for
-- webhook deliveries). The worker finds new jobs by polling instead, every
-- WORKER_POLL_INTERVAL (0.25 s), as it does webhook deliveries.
CREATE OR REPLACE FUNCTION email_jobs_for_pledge() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO email_job (tenant_id, donation_id, kind)
    SELECT d.tenant_id, d.id, k.kind
    FROM donation d CROSS JOIN (VALUES ('receipt'), ('notice')) AS k (kind)
    WHERE d.id = NEW.resource_id AND d.tenant_id = NEW.tenant_id AND d.source = 'public'
    ON CONFLICT (donation_id, kind) DO NOTHING;
    RETURN NULL;
END
$$;
