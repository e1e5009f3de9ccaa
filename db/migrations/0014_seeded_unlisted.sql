-- Demo data that does not surprise a running stack's public directory.
--
-- `conectades seed` marks what it creates: its new tenants (seeded) and every campaign
-- it writes, also into an existing tenant (campaign.seeded), so `seed --purge` can
-- remove exactly that. A tenant that is not listed (seeded tenants by default) is left
-- out of the cross-tenant directory (/api/public/campaigns and the old listing) and is
-- still served under /api/public/{tenant}/... Adding columns with a constant default
-- rewrites no table.
ALTER TABLE tenant
    ADD COLUMN listed boolean NOT NULL DEFAULT true,
    ADD COLUMN seeded boolean NOT NULL DEFAULT false;
ALTER TABLE campaign ADD COLUMN seeded boolean NOT NULL DEFAULT false;

-- As in 0002, with the tenant's `listed` as a new last column (CREATE OR REPLACE
-- VIEW may only add columns at the end; the grants of 0002 stay). The cross-tenant
-- directory filters on it; one tenant's directory does not.
CREATE OR REPLACE VIEW public_campaign AS
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
       ), 0::numeric) AS progress,
       t.listed AS tenant_listed
FROM campaign c
JOIN tenant t ON t.id = c.tenant_id
WHERE c.status = 'published' AND t.status = 'active';
