-- Email notifications (issue 17, part 5): one job per message to send, created in
-- the same transaction as the pledge, so a pledge that committed always has its
-- messages queued and a rolled-back one never does.
--
-- Jobs come from the events outbox (0015), not from the donation table: a trigger
-- on `event` makes a receipt and an organization notice for every
-- `donation.created` event whose donation came from the public (a pledge).
-- Donations written without an event (bulk seeding, restores) queue nothing.
--
-- Whether a message is actually sent is decided when it is sent (the donor's
-- contact may be a phone number, the campaign's contact may not be an email; the
-- donor's contact may be encrypted at rest, so SQL cannot look at it): such a job
-- ends as 'skipped'. At least once: a claimed job that is neither sent nor failed
-- within its lease is claimed again; the Message-ID is the job's id, so a resend is
-- recognizable as the same message.
CREATE TABLE email_job (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    donation_id      uuid NOT NULL REFERENCES donation (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('receipt', 'notice')),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Why the last attempt failed or why it was skipped (never an address).
    last_error       text CHECK (length(last_error) <= 500),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at          timestamptz,
    -- The notice's "Confirmar recebimento" link: used once, then refused.
    link_used_at     timestamptz,
    UNIQUE (donation_id, kind)
);
CREATE INDEX email_job_due_idx ON email_job (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_job_tenant_idx ON email_job (tenant_id);

ALTER TABLE email_job ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_job FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_job
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- Runs as the writer of the event (the API role, in its tenant transaction).
CREATE FUNCTION email_jobs_for_pledge() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO email_job (tenant_id, donation_id, kind)
    SELECT d.tenant_id, d.id, k.kind
    FROM donation d CROSS JOIN (VALUES ('receipt'), ('notice')) AS k (kind)
    WHERE d.id = NEW.resource_id AND d.tenant_id = NEW.tenant_id AND d.source = 'public'
    ON CONFLICT (donation_id, kind) DO NOTHING;
    IF FOUND THEN
        -- Wakes the worker (its `email` channel) when the pledge commits.
        PERFORM pg_notify('email', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_email_jobs
    AFTER INSERT ON event
    FOR EACH ROW
    WHEN (NEW.type = 'donation.created' AND NEW.resource_type = 'donation')
    EXECUTE FUNCTION email_jobs_for_pledge();

-- The worker takes due jobs of every tenant (like the credential lookups of 0001,
-- through a narrow SECURITY DEFINER function rather than cross-tenant access), then
-- reads and updates each one in its own tenant's transaction. Claiming counts an
-- attempt and leases the job for `lease` seconds: a worker that dies mid-send
-- leaves it due again after the lease.
CREATE FUNCTION claim_email_jobs(batch integer, lease double precision)
    RETURNS TABLE (id uuid, tenant_id uuid, donation_id uuid, kind text, attempts integer,
                   created_at timestamptz)
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE email_job j
        SET attempts = j.attempts + 1,
            next_attempt_at = clock_timestamp() + make_interval(secs => lease)
        FROM (
            SELECT e.id FROM email_job e
            WHERE e.status = 'pending' AND e.next_attempt_at <= clock_timestamp()
            ORDER BY e.next_attempt_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE j.id = due.id
        RETURNING j.id, j.tenant_id, j.donation_id, j.kind, j.attempts, j.created_at
    $$;

REVOKE ALL ON FUNCTION claim_email_jobs(integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_email_jobs(integer, double precision) TO conectades_app;
GRANT SELECT, INSERT, UPDATE ON email_job TO conectades_app;
