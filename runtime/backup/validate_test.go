package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validManifest() *Manifest {
	return &Manifest{Format: 1, Accounts: []AccountEntry{{ID: "alpha", DBName: "acct_alpha", Entry: "accounts/alpha.pgdump",
		Rows: map[string]int64{"orders": 3}}},
		Entries: []Entry{{Name: "registry.json"}, {Name: "accounts/alpha.pgdump"}, {Name: "media/img/a.png"}}}
}

// TestManifestValidateTrustsNoName: restore checks every name of a manifest itself, signed or not.
func TestManifestValidateTrustsNoName(t *testing.T) {
	require.NoError(t, validManifest().Validate())
	for _, tc := range []struct {
		name   string
		change func(m *Manifest)
	}{
		{"path traversal in media", func(m *Manifest) { m.Entries[2].Name = "media/../../etc/passwd" }},
		{"absolute media key", func(m *Manifest) { m.Entries[2].Name = "media//etc/passwd" }},
		{"dot segment", func(m *Manifest) { m.Entries[2].Name = "media/a/./b" }},
		{"backslash", func(m *Manifest) { m.Entries[2].Name = `media/..\x` }},
		{"control character", func(m *Manifest) { m.Entries[2].Name = "media/a\x00b" }},
		{"unknown entry", func(m *Manifest) { m.Entries[2].Name = "scripts/run.sh" }},
		{"traversal in a dump name", func(m *Manifest) { m.Entries[1].Name = "accounts/../alpha.pgdump" }},
		{"account id breaking the rule", func(m *Manifest) {
			m.Accounts[0].ID, m.Accounts[0].Entry, m.Entries[1].Name = "Alpha_1", "accounts/Alpha_1.pgdump", "accounts/Alpha_1.pgdump"
		}},
		{"account id with SQL", func(m *Manifest) { m.Accounts[0].ID = "alpha'; DROP DATABASE x; --" }},
		{"dump of another account", func(m *Manifest) { m.Accounts[0].Entry = "accounts/beta.pgdump" }},
		{"account listed twice", func(m *Manifest) { m.Accounts = append(m.Accounts, m.Accounts[0]) }},
		{"dump without account", func(m *Manifest) { m.Entries = append(m.Entries, Entry{Name: "accounts/beta.pgdump"}) }},
		{"entry listed twice", func(m *Manifest) { m.Entries = append(m.Entries, m.Entries[2]) }},
		{"database name", func(m *Manifest) { m.Accounts[0].DBName = "acct alpha" }},
		{"table name", func(m *Manifest) { m.Accounts[0].Rows = map[string]int64{`orders"; --`: 1} }},
		{"no registry", func(m *Manifest) { m.Entries[0].Name = "media/registry.json" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.change(m)
			err := m.Validate()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

// TestRestoreRefusesUnsafeNamesInASignedArchive: an archive signed with the right key but naming a media object
// ../../x is refused before restore connects to anything (the database URL here leads nowhere).
func TestRestoreRefusesUnsafeNamesInASignedArchive(t *testing.T) {
	key := testKey(t, 7)
	data, _ := writeArchive(t, key, []testEntry{{"registry.json", []byte(`{"accounts":[]}`)},
		{"accounts/alpha.pgdump", []byte("dump")}, {"media/../../outside", []byte("x")}})
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "hourly"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hourly", "20261121T140700Z-0a0b0c0d.omsbak"), data, 0o644))
	_, err := Restore(context.Background(), "20261121T140700Z-0a0b0c0d", Options{Bucket: "file://" + dir, Key: key,
		DatabaseURL: "postgres://nobody@127.0.0.1:1/none", MediaURL: "file://" + t.TempDir()})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), `media/../../outside`)
	assert.False(t, strings.Contains(err.Error(), "connect"), err.Error())
}
