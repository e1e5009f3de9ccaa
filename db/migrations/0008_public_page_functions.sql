-- A public campaign page, and a page of its donations, in one statement each.
--
-- They were BEGIN + set_config, the campaign, its items (or donations), COMMIT:
-- four or five round trips for what the edge asks once a second per page, and a
-- statement costs PostgreSQL and asyncpg more than these short reads do. These
-- functions set the tenant for their own statement's transaction (`set_config(...,
-- true)` in the implicit transaction of a bare SELECT: it ends with the statement)
-- and then read as the caller: SECURITY INVOKER, so row-level security applies to
-- every row they read, exactly as in tenant_transaction. Call them outside an
-- explicit transaction (db/queries/public.py does): inside one, the tenant they set
-- would stay for the rest of it.

-- The campaign with its items and their totals (per item through the slots' key),
-- one row per item, or one row with NULL item columns when it has none; no row when
-- there is no such campaign. Drafts come back too (the route treats them as absent).
CREATE FUNCTION public_campaign_page(p_tenant uuid, p_slug text)
RETURNS TABLE (
    id uuid, slug text, title text, subtitle text, description text, image_url text,
    categories text[], location text, contact text, starts_at timestamptz,
    ends_at timestamptz, status text, created_at timestamptz, accepting boolean,
    item_id uuid, item_name text, item_unit text, item_quantity_requested bigint,
    item_pending_quantity bigint, item_pending_count bigint,
    item_confirmed_quantity bigint, item_delivered_quantity bigint,
    item_confirmed_count bigint, item_delivered_count bigint
)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT c.id, c.slug, c.title, c.subtitle, c.description, c.image_url, c.categories,
           c.location, c.contact, c.starts_at, c.ends_at, c.status, c.created_at,
           (c.status = 'published'
            AND (c.starts_at IS NULL OR c.starts_at <= now())
            AND (c.ends_at IS NULL OR c.ends_at > now())),
           i.id, i.name, i.unit, i.quantity_requested,
           coalesce(t.pending_quantity, 0)::bigint, coalesce(t.pending_count, 0)::bigint,
           coalesce(t.confirmed_quantity, 0)::bigint, coalesce(t.delivered_quantity, 0)::bigint,
           coalesce(t.confirmed_count, 0)::bigint, coalesce(t.delivered_count, 0)::bigint
    FROM campaign c
    LEFT JOIN campaign_item i ON i.tenant_id = c.tenant_id AND i.campaign_id = c.id
    LEFT JOIN LATERAL (SELECT * FROM item_totals s WHERE s.item_id = i.id OFFSET 0) t ON true
    WHERE c.tenant_id = p_tenant AND c.slug = p_slug
    ORDER BY i.created_at, i.id;
END
$$;

-- The campaign's status and a page of its donations, newest first, cancelled ones
-- left out, never donor_contact; one row per donation, or one row with NULL
-- donation columns when the page is empty; no row when there is no such campaign.
-- The page is taken down donation_campaign_recent_idx first, alone, and only then
-- joined to its items (the foreign key (campaign_id, item_id) says they are this
-- campaign's). Written as one join, the planner misjudged the row count and sorted
-- every donation of the campaign for each page (3.4 ms against 0.3 ms at 3,300).
CREATE FUNCTION public_campaign_donations(
    p_tenant uuid, p_slug text, p_before_at timestamptz, p_before_id uuid, p_limit int
)
RETURNS TABLE (
    campaign_status text, id uuid, item_id uuid, item_name text, unit text,
    quantity bigint, status text, message text, donor_name text, created_at timestamptz
)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT c.status, d.id, d.item_id, i.name, i.unit, d.quantity, d.status, d.message,
           CASE WHEN d.anonymous OR btrim(d.donor_name) = '' THEN NULL
                ELSE d.donor_name END,
           d.created_at
    FROM campaign c
    LEFT JOIN LATERAL (
        SELECT x.id, x.item_id, x.quantity, x.status, x.message, x.anonymous,
               x.donor_name, x.created_at
        FROM donation x
        WHERE x.tenant_id = p_tenant AND x.campaign_id = c.id AND x.status <> 'cancelled'
          AND (x.created_at, x.id)
              < (coalesce(p_before_at, 'infinity'::timestamptz),
                 coalesce(p_before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
        ORDER BY x.created_at DESC, x.id DESC
        LIMIT p_limit
    ) d ON true
    LEFT JOIN campaign_item i ON i.id = d.item_id AND i.campaign_id = c.id
    WHERE c.tenant_id = p_tenant AND c.slug = p_slug
    ORDER BY d.created_at DESC, d.id DESC;
END
$$;

REVOKE ALL ON FUNCTION public_campaign_page(uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public_campaign_donations(uuid, text, timestamptz, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public_campaign_page(uuid, text) TO conectades_app;
GRANT EXECUTE ON FUNCTION public_campaign_donations(uuid, text, timestamptz, uuid, int)
    TO conectades_app;
