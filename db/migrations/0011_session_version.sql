-- Sessions end when a staff user's password, role or active flag changes, or when a
-- refresh token of theirs is reused.
--
-- Every token carries the user's session_version at issue (claim `sv`); the check
-- each request already makes (auth_staff) now returns the current one, and a token
-- with another is refused: access tokens at their next request, refresh tokens at
-- their next use. Changing the password, role or active flag (db/queries/staff.py)
-- and detecting a reused refresh token add one, ending every session of that user
-- at once. Rehashing a password at login keeps it (same password, same sessions).
ALTER TABLE staff_user ADD COLUMN session_version integer NOT NULL DEFAULT 0;

-- The return types change, so the functions are dropped and made again (same
-- arguments, same grants; callers read columns by name).
DROP FUNCTION auth_staff_login(text, text);
DROP FUNCTION auth_staff(uuid);

-- Candidates for a login. With a tenant slug: that tenant's user (at most one row,
-- whatever its state, so the caller verifies the password before refusing).
-- Without one: active users of active tenants, at most four rows. The caller
-- verifies the password against each (about 0.05 s of CPU apiece, so the number is
-- bounded) and asks for the tenant only when it matches more than one; a user whose
-- username is in more than four organizations names the tenant to log in.
CREATE FUNCTION auth_staff_login(p_username text, p_tenant_slug text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, tenant_status text, password_hash text,
                   role text, active boolean, session_version integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT u.id, u.tenant_id, t.status, u.password_hash, u.role, u.active,
               u.session_version
        FROM staff_user u JOIN tenant t ON t.id = u.tenant_id
        WHERE u.username = p_username
          AND (CASE WHEN p_tenant_slug IS NULL THEN t.status = 'active' AND u.active
                    ELSE t.slug = p_tenant_slug END)
        ORDER BY u.tenant_id
        LIMIT 4
    $$;

-- The current state of a staff user, checked on every request with an access
-- token and on refresh, so suspension, deactivation and ended sessions take
-- effect at once.
CREATE FUNCTION auth_staff(p_user_id uuid)
    RETURNS TABLE (tenant_id uuid, role text, active boolean, tenant_status text,
                   session_version integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT u.tenant_id, u.role, u.active, t.status, u.session_version
        FROM staff_user u JOIN tenant t ON t.id = u.tenant_id
        WHERE u.id = p_user_id
    $$;

REVOKE ALL ON FUNCTION auth_staff_login(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_staff(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_staff_login(text, text) TO conectades_app;
GRANT EXECUTE ON FUNCTION auth_staff(uuid) TO conectades_app;
