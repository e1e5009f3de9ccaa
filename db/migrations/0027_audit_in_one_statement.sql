-- A partner write's audit row in one round trip instead of three. The API wrote it in
-- a transaction of its own (BEGIN with the tenant, the INSERT, COMMIT) from the
-- response middleware, before the answer went out; this function sets the tenant
-- for its own statement, as the public page functions do (0008), so the row is
-- written by one call outside any transaction: the setting is local to that call's
-- implicit transaction and row-level security checks the row as before (the
-- function is SECURITY INVOKER: the API's role, its grants and its policy). Called
-- inside an open transaction it would leave the tenant set until that transaction
-- ends, so api/audit.py calls it on a connection of its own.
CREATE FUNCTION audit_api_entry(
    p_tenant uuid, p_actor_kind text, p_actor_id uuid, p_actor_display text, p_action text,
    p_resource_type text, p_resource_id uuid, p_method text, p_path text, p_client_ip inet,
    p_request_id text, p_status integer, p_success boolean
) RETURNS uuid
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
    AS $$
DECLARE
    new_id uuid;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- The actor's display comes from its own row when the caller has none: the key's
    -- public prefix or the staff user's username.
    INSERT INTO audit_log (tenant_id, actor_kind, actor_id, actor_display, action,
                           resource_type, resource_id, method, path, client_ip,
                           request_id, status, success)
    VALUES (app_current_tenant(), p_actor_kind, p_actor_id,
            COALESCE(p_actor_display,
                     CASE p_actor_kind
                       WHEN 'api_key' THEN (SELECT prefix FROM api_key WHERE id = p_actor_id)
                       WHEN 'staff_user' THEN (SELECT username FROM staff_user WHERE id = p_actor_id)
                     END, ''),
            p_action, p_resource_type, p_resource_id, p_method, p_path, p_client_ip,
            p_request_id, p_status, p_success)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
REVOKE ALL ON FUNCTION audit_api_entry(uuid, text, uuid, text, text, text, uuid, text, text,
                                       inet, text, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_api_entry(uuid, text, uuid, text, text, text, uuid, text, text,
                                          inet, text, integer, boolean) TO conectades_app;
