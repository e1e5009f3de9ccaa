-- Idempotency keys per credential, not per tenant.
--
-- One namespace per tenant let anyone pre-claim a partner's predictable key with an
-- anonymous pledge (`Idempotency-Key: order-1001` on the public route), so the
-- partner's own request with that key failed with 422. A record now belongs to the
-- credential that made it: `key:<api key id>`, `user:<staff user id>`, or `public`
-- for anonymous pledges (api/idempotency.py: scope_of).
--
-- Records written before this migration have scope '' and keep the old meaning
-- (any credential of the tenant) until they expire (IDEMPOTENCY_TTL, 24 h): a
-- client retrying across the upgrade still gets its stored response instead of a
-- second donation. The lookup reads the (tenant, key) range of the new primary key.
ALTER TABLE idempotency_record ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE idempotency_record ALTER COLUMN scope DROP DEFAULT;
ALTER TABLE idempotency_record ADD CONSTRAINT idempotency_record_scope_check
    CHECK (length(scope) <= 64);
ALTER TABLE idempotency_record DROP CONSTRAINT idempotency_record_pkey;
ALTER TABLE idempotency_record ADD PRIMARY KEY (tenant_id, key, scope);
