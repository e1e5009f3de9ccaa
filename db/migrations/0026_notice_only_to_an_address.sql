-- A pledge's organization notice is queued only when the campaign's contact could be
-- an email address (it has an "@"). Without one the job could only ever be settled
-- as skipped (notify/messages.py: `email_address` refuses a contact without "@"), and
-- each such job still cost the worker a claim, a read of the donation with its
-- contact decrypted and a settling transaction: the same work as a message sent,
-- for every pledge to a campaign reached by phone. A contact with an "@" that is
-- not an address after all is still queued and skipped by the worker, as before.
CREATE OR REPLACE FUNCTION email_jobs_for_pledge() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO email_job (tenant_id, donation_id, kind)
    SELECT d.tenant_id, d.id, k.kind
    FROM donation d
    JOIN campaign c ON c.tenant_id = d.tenant_id AND c.id = d.campaign_id
    CROSS JOIN (VALUES ('receipt'), ('notice')) AS k (kind)
    WHERE d.id = NEW.resource_id AND d.tenant_id = NEW.tenant_id AND d.source = 'public'
      AND (k.kind = 'receipt' OR strpos(coalesce(c.contact, ''), '@') > 0)
    ON CONFLICT (donation_id, kind) DO NOTHING;
    RETURN NULL;
END
$$;
