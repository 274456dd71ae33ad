-- What each account database held when it was last restored, or created empty by oms migrate: `oms restore`
-- refuses to replace a database that has taken writes since (postgres/baseline.go).
CREATE TABLE restore_baselines (
    database     text PRIMARY KEY,
    -- a database replaced by other means (dropped and created, renamed) has another oid: its baseline no longer holds
    database_oid oid NOT NULL,
    -- pg_current_xact_id() of the baseline: a row written later has a newer xmin
    xid          xid8 NOT NULL,
    row_counts   jsonb NOT NULL,
    reason       text NOT NULL,
    taken_at     timestamptz NOT NULL DEFAULT now()
);
