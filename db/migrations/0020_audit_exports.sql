-- The audit log also records the reads that hand out donors' personal data in bulk
-- (GET /api/v1/donations/export: who exported, when, from where; api/audit.py
-- AUDITED_READS), so a row's method may be GET.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_method_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_method_check
    CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE'));
