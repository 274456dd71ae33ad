-- The registry: which accounts exist, where their database is, and the hashes
-- of their API keys. Only the runtime's admin role can read it.
CREATE TABLE accounts (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    db_name     text NOT NULL UNIQUE,
    db_role     text NOT NULL UNIQUE,
    -- the account role's generated password; it never leaves this database.
    db_password text NOT NULL,
    ready       boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account ON api_keys (account_id);
