-- A page of a campaign's donations finds each donation's item by key.
--
-- In 0008 the page was joined to campaign_item with a plain LEFT JOIN. The planner
-- chose to hash every item the tenant can see, read by a sequential scan of the
-- whole table that evaluates the RLS policy (current_setting) on each row: 1.7 ms
-- of a 2.4 ms page at 1,746 items in the load fixture, and 4.8 ms a page on
-- average under the 1000-user load, the most expensive statement of the mix. The
-- policy's per-row cost is not in the planner's estimate, so the hash looked cheap.
-- A LATERAL lookup that cannot be flattened into a join (OFFSET 0, as in
-- public_campaign_page) is a keyed probe per donation: at most the page's 21.
-- The rest of the function is unchanged; CREATE OR REPLACE keeps its grants.
CREATE OR REPLACE FUNCTION public_campaign_donations(
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
    LEFT JOIN LATERAL (
        SELECT y.name, y.unit FROM campaign_item y
        WHERE y.id = d.item_id AND y.campaign_id = c.id
        OFFSET 0
    ) i ON true
    WHERE c.tenant_id = p_tenant AND c.slug = p_slug
    ORDER BY d.created_at DESC, d.id DESC;
END
$$;
