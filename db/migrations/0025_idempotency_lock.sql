-- The idempotency key's lock in the same round trip as BEGIN and the tenant
-- (db/tenancy.py: `tenant_transaction(..., lock=...)`). A simple-query message
-- returns no rows to asyncpg's `execute`, so the lock cannot answer "taken" as a
-- value there: it raises instead, with SQLSTATE 55P03 (lock_not_available), which
-- api/idempotency.py answers as 409 "still being processed". The lock is the same
-- transaction-scoped advisory lock the API took with a statement of its own before.
CREATE FUNCTION idempotency_lock(lock_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(lock_id) THEN
        RAISE EXCEPTION 'idempotency key in flight' USING ERRCODE = 'lock_not_available';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION idempotency_lock(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION idempotency_lock(bigint) TO conectades_app;
