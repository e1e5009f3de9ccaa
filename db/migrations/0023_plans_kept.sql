-- Statements that PostgreSQL planned again at every call, now planned once per
-- session (same signatures, same results).
--
-- 1. public_campaign_donations (the donor page's recent donations and the public
--    donations list). PL/pgSQL keeps a statement's plan, but its plan cache tries
--    custom plans first and keeps making them while they look cheaper than the
--    generic one. With `LIMIT p_limit` unknown, the generic plan's estimate is
--    worse, so once a campaign had thousands of donations every call was planned
--    again. Measured on this machine (2026-12-03, 3,000 calls, the backend's CPU
--    from /proc): on a campaign given 8,000 donations, the donor page's statement
--    cost 0.68 ms of PostgreSQL CPU (0.37 ms before those donations); with this
--    version 0.39 ms. `conectades bench` (json-build, page-build, donations-one, 2
--    rounds, alternated): page-build's PostgreSQL 0.52-0.55 ms per request against
--    0.68-0.91 ms before.
--    The generic plan is forced, which is only safe if it is good for every
--    cursor: the cursor is now compared as plain parameters (v_before_at,
--    v_before_id), which the generic plan uses as an index condition on
--    donation_campaign_recent_idx. Inside coalesce() it was a filter over every
--    newer donation.
-- 2. auth_api_key, auth_staff and touch_api_key were LANGUAGE sql SECURITY
--    DEFINER functions: never inlined, so their statement was parsed and planned
--    at every call (pg_stat_statements with track_planning over a 500-user mixed
--    run: auth_api_key's statement 257 calls, 257 plans, 0.27 ms of planning and
--    0.05 ms of execution each). As PL/pgSQL they keep their plan, like the
--    worker's claims in 0022.

CREATE OR REPLACE FUNCTION public_campaign_donations(
    p_tenant uuid, p_slug text, p_before_at timestamptz, p_before_id uuid, p_limit int
)
RETURNS TABLE (
    campaign_status text, id uuid, item_id uuid, item_name text, unit text,
    quantity bigint, status text, message text, message_enc bytea, donor_name text,
    created_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_before_at timestamptz := coalesce(p_before_at, 'infinity'::timestamptz);
    v_before_id uuid := coalesce(p_before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid);
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
          AND (x.created_at, x.id) < (v_before_at, v_before_id)
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

CREATE OR REPLACE FUNCTION auth_api_key(p_prefix text)
    RETURNS TABLE (key_id uuid, tenant_id uuid, secret_hash bytea, scopes text[],
                   expires_at timestamptz, revoked_at timestamptz, tenant_status text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT k.id, k.tenant_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at, t.status
        FROM api_key k JOIN tenant t ON t.id = k.tenant_id
        WHERE k.prefix = p_prefix;
END
$$;

CREATE OR REPLACE FUNCTION auth_staff(p_user_id uuid)
    RETURNS TABLE (tenant_id uuid, role text, active boolean, tenant_status text,
                   session_version integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT u.tenant_id, u.role, u.active, t.status, u.session_version
        FROM staff_user u JOIN tenant t ON t.id = u.tenant_id
        WHERE u.id = p_user_id;
END
$$;

CREATE OR REPLACE FUNCTION touch_api_key(p_key_id uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
BEGIN
    UPDATE api_key SET last_used_at = now()
    WHERE id = p_key_id
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
END
$$;
