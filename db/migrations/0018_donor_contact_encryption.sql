-- Donors' contacts and messages encrypted at rest (issue 18, part 3; db/crypto.py).
--
-- The API encrypts with AES-256-GCM under a key from its environment and writes the
-- sealed values here; the plaintext columns donor_contact and message get '' on every
-- new write. A person is found by `donor_contact_hmac`, an HMAC-SHA256 of the trimmed,
-- lower-cased contact under a second key, so a dump of the database holds neither the
-- contacts nor anything that can be hashed back to one without that key.
--
-- A migration has no key, so the rows written before it keep their plaintext until
-- `conectades donor rotate-keys` (the local stack runs it after migrating) encrypts
-- them and empties the plaintext columns. Until then readers fall back to the
-- plaintext column when the sealed one is NULL, and the donor commands find those
-- rows by the old comparison (the partial index below, empty once they are done).
--
-- Sizes: 1 format byte + 2 key-id bytes + 12 nonce bytes + 16 tag bytes = 31 bytes
-- over the UTF-8 text, at most 4 bytes a character (200 and 1000 characters).
ALTER TABLE donation
    ADD COLUMN donor_contact_enc bytea
        CONSTRAINT donation_donor_contact_enc_check
        CHECK (octet_length(donor_contact_enc) BETWEEN 32 AND 31 + 4 * 200),
    ADD COLUMN donor_contact_hmac bytea
        CONSTRAINT donation_donor_contact_hmac_check
        CHECK (octet_length(donor_contact_hmac) = 32),
    ADD COLUMN message_enc bytea
        CONSTRAINT donation_message_enc_check
        CHECK (octet_length(message_enc) BETWEEN 32 AND 31 + 4 * 1000);

CREATE INDEX donation_contact_hmac_idx ON donation (donor_contact_hmac)
    WHERE donor_contact_hmac IS NOT NULL;
-- Rows not yet encrypted, found as before (trimmed, case-insensitive).
CREATE INDEX donation_plain_contact_idx ON donation (lower(btrim(donor_contact)))
    WHERE donor_contact <> '';

-- The public donations page returns the sealed message beside the plaintext one; the
-- API decrypts it (SQL never holds the key). The return type changes, so the
-- function is dropped and created again (with its grants), otherwise as in 0009.
DROP FUNCTION public_campaign_donations(uuid, text, timestamptz, uuid, int);
CREATE FUNCTION public_campaign_donations(
    p_tenant uuid, p_slug text, p_before_at timestamptz, p_before_id uuid, p_limit int
)
RETURNS TABLE (
    campaign_status text, id uuid, item_id uuid, item_name text, unit text,
    quantity bigint, status text, message text, message_enc bytea, donor_name text,
    created_at timestamptz
)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT c.status, d.id, d.item_id, i.name, i.unit, d.quantity, d.status, d.message,
           d.message_enc,
           CASE WHEN d.anonymous OR btrim(d.donor_name) = '' THEN NULL
                ELSE d.donor_name END,
           d.created_at
    FROM campaign c
    LEFT JOIN LATERAL (
        SELECT x.id, x.item_id, x.quantity, x.status, x.message, x.message_enc, x.anonymous,
               x.donor_name, x.created_at
        FROM donation x
        WHERE x.tenant_id = p_tenant AND x.campaign_id = c.id AND x.status <> 'cancelled'
          AND (x.created_at, x.id)
              < (coalesce(p_before_at, 'infinity'::timestamptz),
                 coalesce(p_before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
        ORDER BY x.created_at DESC, x.id DESC
        LIMIT p_limit
    ) d ON true
    LEFT JOIN LATERAL (
        SELECT y.name, y.unit FROM campaign_item y
        WHERE y.id = d.item_id AND y.campaign_id = c.id
        OFFSET 0
    ) i ON true
    WHERE c.tenant_id = p_tenant AND c.slug = p_slug
    ORDER BY d.created_at DESC, d.id DESC;
END
$$;

REVOKE ALL ON FUNCTION public_campaign_donations(uuid, text, timestamptz, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public_campaign_donations(uuid, text, timestamptz, uuid, int)
    TO conectades_app;
