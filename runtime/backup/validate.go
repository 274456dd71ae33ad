package backup

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	oms "github.com/omscloud/omscloud/runtime"
)

// identPattern is what the runtime's own database, role and table names look like.
var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// maxMediaKey bounds a media object's key (GCS allows 1024 bytes).
const maxMediaKey = 1024

// Validate checks a manifest's names as restore will use them, trusting
// nothing because the archive's signature is valid: every entry is the
// registry, an account's dump or a media object with a plain relative key;
// every account id follows the account-id rule, appears once and names its own
// dump; database and table names are plain identifiers. Restore calls it
// before it touches anything.
func (m *Manifest) Validate() error {
	if m.Format != 1 {
		return fmt.Errorf("%w: manifest format %d, this release reads 1", ErrCorrupt, m.Format)
	}
	entries := map[string]bool{}
	dumps := 0
	for _, e := range m.Entries {
		if entries[e.Name] {
			return fmt.Errorf("%w: entry %q listed twice", ErrCorrupt, e.Name)
		}
		entries[e.Name] = true
		if err := ValidateEntryName(e.Name); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name, "accounts/") {
			dumps++
		}
	}
	if !entries[registryEntry] {
		return fmt.Errorf("%w: no %s entry", ErrCorrupt, registryEntry)
	}
	ids := map[string]bool{}
	for _, a := range m.Accounts {
		if err := oms.ValidateAccountID(a.ID); err != nil {
			return fmt.Errorf("%w: account id %q: %v", ErrCorrupt, a.ID, err)
		}
		if ids[a.ID] {
			return fmt.Errorf("%w: account %s listed twice", ErrCorrupt, a.ID)
		}
		ids[a.ID] = true
		if a.Entry != dumpEntry(a.ID) || !entries[a.Entry] {
			return fmt.Errorf("%w: account %s: entry %q, expected %q in the archive", ErrCorrupt, a.ID, a.Entry, dumpEntry(a.ID))
		}
		if !identPattern.MatchString(a.DBName) {
			return fmt.Errorf("%w: account %s: database name %q", ErrCorrupt, a.ID, a.DBName)
		}
		for table, n := range a.Rows {
			if !identPattern.MatchString(table) || n < 0 {
				return fmt.Errorf("%w: account %s: row count %q: %d", ErrCorrupt, a.ID, table, n)
			}
		}
	}
	if dumps != len(m.Accounts) {
		return fmt.Errorf("%w: %d account dumps for %d accounts", ErrCorrupt, dumps, len(m.Accounts))
	}
	return nil
}

func dumpEntry(id string) string { return "accounts/" + id + ".pgdump" }

// ValidateEntryName checks one entry name: registry.json, accounts/<account
// id>.pgdump, or media/<key> where the key is a relative path of non-empty
// segments, none "." or "..", without backslashes or control characters.
func ValidateEntryName(name string) error {
	if name == registryEntry {
		return nil
	}
	if id, ok := strings.CutPrefix(name, "accounts/"); ok {
		id, ok = strings.CutSuffix(id, ".pgdump")
		if !ok || oms.ValidateAccountID(id) != nil {
			return fmt.Errorf("%w: entry %q is not accounts/<account id>.pgdump", ErrCorrupt, name)
		}
		return nil
	}
	key, ok := strings.CutPrefix(name, "media/")
	if !ok {
		return fmt.Errorf("%w: unknown entry %q", ErrCorrupt, name)
	}
	if key == "" || len(key) > maxMediaKey || !utf8.ValidString(key) || strings.ContainsRune(key, '\\') ||
		oms.CheckLine("key", key) != nil {
		return fmt.Errorf("%w: media entry %q: not a plain object key", ErrCorrupt, name)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: media entry %q: empty, \".\" or \"..\" path segment", ErrCorrupt, name)
		}
	}
	return nil
}

// validate checks the registry entry's accounts as restore will write them.
func (r *registryDump) validate() error {
	for _, a := range r.Accounts {
		if err := oms.ValidateAccountID(a.ID); err != nil {
			return fmt.Errorf("%w: registry: account id %q: %v", ErrCorrupt, a.ID, err)
		}
		if !identPattern.MatchString(a.DBName) || !identPattern.MatchString(a.DBRole) {
			return fmt.Errorf("%w: registry: account %s: database %q, role %q", ErrCorrupt, a.ID, a.DBName, a.DBRole)
		}
	}
	for _, k := range r.APIKeys {
		if err := oms.ValidateAccountID(k.AccountID); err != nil {
			return fmt.Errorf("%w: registry: API key of account %q: %v", ErrCorrupt, k.AccountID, err)
		}
	}
	return nil
}
