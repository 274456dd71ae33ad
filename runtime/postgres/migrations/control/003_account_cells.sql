-- The cell (database server, OMS_DB_CELLS) that holds each account's database. Accounts registered before cells
-- existed are on the control database's server, "main" (postgres.MainCell).
ALTER TABLE accounts ADD COLUMN cell text NOT NULL DEFAULT 'main';
