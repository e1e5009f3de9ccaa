-- Staff logins. The tenant is not known before a login (it may even be omitted),
-- and row-level security hides staff_user rows until it is, so the lookups go
-- through narrow SECURITY DEFINER functions, like auth_api_key in 0001.

-- Logins without a tenant look the username up across tenants.
CREATE INDEX staff_user_username_idx ON staff_user (username);

-- Candidates for a login. With a tenant slug: that tenant's user (at most one row,
-- whatever its state, so the caller verifies the password before refusing).
-- Without one: only active users of active tenants, at most two rows (two mean
-- the caller must name the tenant).
CREATE FUNCTION auth_staff_login(p_username text, p_tenant_slug text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, tenant_status text, password_hash text,
                   role text, active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT u.id, u.tenant_id, t.status, u.password_hash, u.role, u.active
        FROM staff_user u JOIN tenant t ON t.id = u.tenant_id
        WHERE u.username = p_username
          AND (CASE WHEN p_tenant_slug IS NULL THEN t.status = 'active' AND u.active
                    ELSE t.slug = p_tenant_slug END)
        ORDER BY u.tenant_id
        LIMIT 2
    $$;

-- The current state of a staff user, checked on every request with an access
-- token and on refresh, so suspension and deactivation take effect at once.
CREATE FUNCTION auth_staff(p_user_id uuid)
    RETURNS TABLE (tenant_id uuid, role text, active boolean, tenant_status text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT u.tenant_id, u.role, u.active, t.status
        FROM staff_user u JOIN tenant t ON t.id = u.tenant_id
        WHERE u.id = p_user_id
    $$;

REVOKE ALL ON FUNCTION auth_staff_login(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_staff(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_staff_login(text, text) TO conectades_app;
GRANT EXECUTE ON FUNCTION auth_staff(uuid) TO conectades_app;
