package systemtest

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
)

// The runtime verifies the database server against --db-ca-file (sslmode=verify-ca), as it must against Cloud SQL,
// and a server signed by another CA fails with an error naming the flag.
func TestDatabaseServerIsVerifiedAgainstTheCAFile(t *testing.T) {
	ca, other := omstest.NewCA(t, "Google Cloud SQL Server CA"), omstest.NewCA(t, "another CA")
	pg := omstest.TLSPostgres(t, ca)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pg.PrimaryURL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE DATABASE oms`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	// The server accepts TLS only; the URL says sslmode=require, which --db-ca-file turns into verify-ca.
	dbURL := pg.PrimaryURL("oms")
	keyFile := writeKey(t)
	require.Contains(t, dbURL, "sslmode=require")
	_, err = pgx.Connect(ctx, strings.Replace(dbURL, "sslmode=require", "sslmode=disable", 1))
	require.ErrorContains(t, err, "no encryption", "the server refuses connections without TLS")
	oms := func(caFile, dbURL string, args ...string) (string, error) {
		env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_DB_CA_FILE": caFile,
			"OMS_BACKUP_KEY_FILE": keyFile, "OMS_PG_BIN_DIR": pg.BinDir()}
		stdout, logs, err := Run(t, env, args...)
		assert.NotContains(t, logs, pg.Password())
		return stdout, err
	}

	_, err = oms(ca.File, dbURL, "migrate")
	require.NoError(t, err)
	out, err := oms(ca.File, dbURL, "account", "create", "--id", "acme", "--name", "Acme")
	require.NoError(t, err, "the account's own connection verifies too")
	assert.Contains(t, out, `"apiKey"`)
	_, err = oms(ca.File, dbURL, "migrate") // control and account database, each in its own pool
	require.NoError(t, err)
	// pg_dump (libpq) derives its URL from the same one: it verifies the server too.
	bucket := "file://" + t.TempDir()
	_, err = oms(ca.File, dbURL, "backup", "--tier", "hourly", "--to", bucket)
	require.NoError(t, err)
	_, err = oms(other.File, dbURL, "backup", "--tier", "hourly", "--to", bucket)
	assert.ErrorContains(t, err, "--db-ca-file/OMS_DB_CA_FILE")

	_, err = oms(other.File, dbURL, "migrate")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--db-ca-file/OMS_DB_CA_FILE ("+other.File+")")
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	assert.NotContains(t, err.Error(), pg.Password())

	// verify-full cannot work: the certificate names the instance, not the address (why the runtime uses verify-ca).
	full := strings.Replace(dbURL, "sslmode=require", "sslmode=verify-full", 1)
	_, err = oms(ca.File, full, "migrate")
	assert.ErrorContains(t, err, "--db-ca-file/OMS_DB_CA_FILE")

	_, err = oms(t.TempDir()+"/missing.pem", dbURL, "migrate")
	assert.ErrorContains(t, err, "--db-ca-file/OMS_DB_CA_FILE: read CA file")
	_, err = oms("", strings.Replace(dbURL, "sslmode=require", "sslmode=verify-ca", 1), "migrate")
	assert.ErrorContains(t, err, "set --db-ca-file/OMS_DB_CA_FILE")
}
