"""The SQL that makes the database refuse UPDATE and DELETE on the audit table (migration 0003).

Kept here, not in the migration, because the test suite's SQLite flush lifts the DELETE trigger by
the same statements (chave/conftest.py).
"""

PG_TRIGGER = """
CREATE OR REPLACE FUNCTION chave_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP;
END
$body$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION chave_audit_append_only();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS audit_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS chave_audit_append_only();
"""
SQLITE_NO_UPDATE = ("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_auditevent "
                    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END")
SQLITE_NO_DELETE = ("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_auditevent "
                    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END")
SQLITE_DROP = ["DROP TRIGGER IF EXISTS audit_no_update", "DROP TRIGGER IF EXISTS audit_no_delete"]
