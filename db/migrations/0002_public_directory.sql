-- Public directory: what anonymous donors may see, across every active tenant.
--
-- The API role sees campaign rows only for the tenant of its transaction (RLS,
-- FORCE). The public directory spans all active tenants, so it reads through
-- the views below, owned by the owner role (superuser or BYPASSRLS): a view
-- reads its tables with its owner's rights, so it bypasses RLS for exactly the
-- rows and columns it exposes: published campaigns of active tenants, public
-- columns only. donor_contact, drafts and suspended tenants never appear.
--
-- Progress is computed when read (see docs/directory.md for why it is not a
-- stored column maintained by a trigger: that would be one hot row per campaign).

CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

-- unaccent() is STABLE (its dictionary could change); with the dictionary named
-- explicitly the result is fixed, so this wrapper may be IMMUTABLE and indexed.
CREATE FUNCTION f_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;

-- The folded form used by search and location filters: lower case, no accents.
CREATE FUNCTION f_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.f_unaccent($1)) $$;

-- Directory orders, all on published campaigns only (partial indexes):
--   recent/oldest: (created_at, id), read forwards or backwards;
--   deadline: (coalesce(ends_at, 'infinity'), id): campaigns without a deadline last;
--   search: trigram GIN on the folded title and description, for LIKE '%term%'.
-- One tenant's directory by recency uses campaign_tenant_recent_idx from 0001.
CREATE INDEX campaign_public_recent_idx ON campaign (created_at DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX campaign_public_deadline_idx
    ON campaign ((coalesce(ends_at, 'infinity'::timestamptz)), id)
    WHERE status = 'published';
CREATE INDEX campaign_public_tenant_deadline_idx
    ON campaign (tenant_id, (coalesce(ends_at, 'infinity'::timestamptz)), id)
    WHERE status = 'published';
CREATE INDEX campaign_public_search_idx
    ON campaign USING gin (f_fold(title || ' ' || description) gin_trgm_ops)
    WHERE status = 'published';

-- Active tenants by slug (the public URL names the tenant by slug).
CREATE VIEW public_tenant AS
SELECT t.id, t.slug, t.name
FROM tenant t
WHERE t.status = 'active';

-- Not a security_barrier view: with the barrier, PostgreSQL may not use a
-- non-leakproof operator (LIKE, @>) as an index condition, which disables the
-- trigram index for search. The barrier only matters against functions the
-- querying role writes itself; the API role owns nothing and runs only the
-- fixed statements in db/queries/public.py (see docs/directory.md).
CREATE VIEW public_campaign AS
SELECT c.id,
       c.tenant_id,
       t.slug AS tenant_slug,
       t.name AS tenant_name,
       c.slug,
       c.title,
       c.subtitle,
       c.description,
       c.image_url,
       c.categories,
       c.location,
       c.contact,
       c.starts_at,
       c.ends_at,
       c.created_at,
       coalesce(c.ends_at, 'infinity'::timestamptz) AS deadline_key,
       f_fold(c.title || ' ' || c.description) AS search_text,
       f_fold(c.location) AS location_key,
       coalesce((
           SELECT avg(least(1::numeric, coalesce(s.contributed, 0)::numeric
                                        / i.quantity_requested))
           FROM campaign_item i
           LEFT JOIN LATERAL (
               SELECT sum(x.confirmed_quantity + x.delivered_quantity) AS contributed
               FROM item_total_slot x
               WHERE x.item_id = i.id
           ) s ON true
           WHERE i.campaign_id = c.id
       ), 0::numeric) AS progress
FROM campaign c
JOIN tenant t ON t.id = c.tenant_id
WHERE c.status = 'published' AND t.status = 'active';

REVOKE ALL ON public_tenant, public_campaign FROM PUBLIC;
GRANT SELECT ON public_tenant, public_campaign TO conectades_app;
