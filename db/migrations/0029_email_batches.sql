-- The worker's email jobs claimed with what their messages say, and settled as a
-- batch: two statements per batch instead of two transactions per job.
--
-- Until now the worker claimed up to EMAIL_BATCH jobs in one statement, then for
-- each job read its message's context in a tenant transaction (BEGIN with the
-- tenant, SELECT, COMMIT) and settled it in another (BEGIN, UPDATE, COMMIT): six
-- round trips and two commits per email. Measured on this machine (2026-12-04,
-- 500 pledges made while the worker was stopped, then drained; /proc CPU times):
-- PostgreSQL 1.02 ms and the worker 2.78 ms of CPU per email, PostgreSQL's share
-- as much as the pledge's own INSERT and event together.
--
-- `claim_email_messages` claims like `claim_email_jobs` (the same statement: same
-- order, lease and SKIP LOCKED) and returns each job with its message's context,
-- the view `email_message_context`; `found` is false when the donation, its
-- campaign, item or tenant is gone. The claim is repeated rather than called:
-- selecting from `claim_email_jobs()` inside this function cost PostgreSQL 0.52-0.62
-- ms of CPU per email against 0.22-0.24 ms with the statement here (500 pledges
-- drained, 3 rounds each, a fresh stack each, 2026-12-04). `settle_email_jobs` settles many
-- jobs in one UPDATE, each with the outcome the worker had for it ('sent',
-- 'skipped', 'failed', or 'retry' after `delay` seconds), and like the per-job
-- updates only the attempt it claimed: a job whose lease ran out and was claimed
-- again is not overwritten. Both are SECURITY DEFINER (a batch spans tenants, as
-- the claim always did) and PL/pgSQL (plans kept for the session: 0022).

-- What a message says (the confirm link's page reads it too: db/queries/email.py).
-- security_invoker: read as the API's role, row-level security applies to it.
CREATE VIEW email_message_context WITH (security_invoker = true) AS
SELECT d.id, d.tenant_id, d.id AS donation_id, d.quantity, d.donor_name,
       d.donor_contact, d.donor_contact_enc, d.anonymous, d.message, d.message_enc,
       d.status, d.created_at,
       c.title AS campaign_title, c.slug AS campaign_slug, c.contact AS campaign_contact,
       i.name AS item_name, i.unit AS item_unit,
       t.name AS tenant_name, t.slug AS tenant_slug, t.status AS tenant_status
FROM donation d
JOIN campaign c ON c.id = d.campaign_id
JOIN campaign_item i ON i.id = d.item_id
JOIN tenant t ON t.id = d.tenant_id;

GRANT SELECT ON email_message_context TO conectades_app;

CREATE FUNCTION claim_email_messages(batch integer, lease double precision)
    RETURNS TABLE (job_id uuid, tenant_id uuid, donation_id uuid, kind text,
                   attempts integer, job_created_at timestamptz, found boolean,
                   id uuid, quantity bigint, donor_name text, donor_contact text,
                   donor_contact_enc bytea, anonymous boolean, message text,
                   message_enc bytea, status text, created_at timestamptz,
                   campaign_title text, campaign_slug text, campaign_contact text,
                   item_name text, item_unit text,
                   tenant_name text, tenant_slug text, tenant_status text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH claimed AS (
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
        )
        SELECT j.id, j.tenant_id, j.donation_id, j.kind, j.attempts, j.created_at,
               x.id IS NOT NULL,
               x.id, x.quantity, x.donor_name, x.donor_contact, x.donor_contact_enc,
               x.anonymous, x.message, x.message_enc, x.status, x.created_at,
               x.campaign_title, x.campaign_slug, x.campaign_contact,
               x.item_name, x.item_unit, x.tenant_name, x.tenant_slug, x.tenant_status
        FROM claimed j
        LEFT JOIN LATERAL (
            SELECT * FROM email_message_context c
            WHERE c.tenant_id = j.tenant_id AND c.id = j.donation_id
        ) x ON true;
END
$$;

CREATE FUNCTION settle_email_jobs(
    p_ids uuid[], p_attempts integer[], p_outcomes text[], p_delays double precision[],
    p_reasons text[]
) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE
    settled integer;
BEGIN
    UPDATE email_job j
    SET status = CASE WHEN s.outcome = 'retry' THEN 'pending' ELSE s.outcome END,
        sent_at = CASE WHEN s.outcome = 'sent' THEN clock_timestamp() ELSE j.sent_at END,
        next_attempt_at = CASE WHEN s.outcome = 'retry'
                               THEN clock_timestamp() + make_interval(secs => s.delay)
                               ELSE j.next_attempt_at END,
        last_error = CASE WHEN s.outcome = 'sent' THEN NULL ELSE left(s.reason, 500) END
    FROM unnest(p_ids, p_attempts, p_outcomes, p_delays, p_reasons)
        AS s(id, attempt, outcome, delay, reason)
    WHERE j.id = s.id AND j.attempts = s.attempt AND j.status = 'pending'
      AND s.outcome IN ('sent', 'skipped', 'failed', 'retry');
    GET DIAGNOSTICS settled = ROW_COUNT;
    RETURN settled;
END
$$;

REVOKE ALL ON FUNCTION claim_email_messages(integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_email_messages(integer, double precision) TO conectades_app;
REVOKE ALL ON FUNCTION settle_email_jobs(uuid[], integer[], text[], double precision[], text[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION settle_email_jobs(uuid[], integer[], text[], double precision[], text[])
    TO conectades_app;
