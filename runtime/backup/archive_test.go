package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
)

func testKey(t testing.TB, b byte) *LocalKey {
	k, err := NewLocalKey(bytes.Repeat([]byte{b}, 32))
	require.NoError(t, err)
	return k
}

type testEntry struct {
	name string
	data []byte
}

func writeArchive(t testing.TB, key KeyWrapper, entries []testEntry) ([]byte, *Manifest) {
	var buf bytes.Buffer
	created := time.Date(2026, 11, 21, 14, 7, 0, 0, time.UTC)
	aw, err := NewWriter(&buf, Header{ID: "20261121T140700Z-0a0b0c0d", Tier: "hourly", Created: created, Release: "img@sha256:ab"}, key)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, aw.Create(e.name))
		_, err := aw.Write(e.data)
		require.NoError(t, err)
	}
	m, err := aw.Close([]AccountEntry{{ID: "alpha", DBName: "acct_alpha", Entry: "accounts/alpha.pgdump", Rows: map[string]int64{"orders": 3}}}, nil)
	require.NoError(t, err)
	return buf.Bytes(), m
}

// readArchive reads a whole archive the way restore does: header and key, authenticated trailer, every entry.
func readArchive(data []byte, key KeyWrapper) (map[string][]byte, *Manifest, error) {
	ar, err := NewReader(bytes.NewReader(data), key)
	if err != nil {
		return nil, nil, err
	}
	m, raw, mac, err := ParseTrailer(data)
	if err != nil {
		return nil, nil, err
	}
	if err := ar.Authenticate(m, raw, mac); err != nil {
		return nil, nil, err
	}
	out := map[string][]byte{}
	for {
		name, err := ar.Next()
		if errors.Is(err, io.EOF) {
			return out, ar.Manifest(), nil
		}
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(ar)
		if err != nil {
			return nil, nil, err
		}
		out[name] = b
	}
}

func sampleEntries() []testEntry {
	big := make([]byte, 2*ChunkSize+12345)
	_, _ = rand.Read(big)
	return []testEntry{
		{"registry.json", []byte(`{"accounts":[]}`)},
		{"accounts/alpha.pgdump", big},
		{"media/empty", nil},
		{"media/a/b.txt", []byte("hello")},
	}
}

func TestBackupArchiveRoundTrip(t *testing.T) {
	entries := sampleEntries()
	data, wm := writeArchive(t, testKey(t, 1), entries)
	got, m, err := readArchive(data, testKey(t, 1))
	require.NoError(t, err)
	require.Len(t, got, len(entries)+1) // + manifest.json
	for _, e := range entries {
		assert.Equal(t, len(e.data), len(got[e.name]), e.name)
		assert.True(t, bytes.Equal(e.data, got[e.name]), e.name)
		me, ok := m.Entry(e.name)
		require.True(t, ok)
		assert.Equal(t, int64(len(e.data)), me.Size)
	}
	assert.Equal(t, wm, m)
	assert.Equal(t, "img@sha256:ab", m.Release)
	assert.Equal(t, int64(3), m.TotalRows())
	// Nothing of the entries shows in the archive.
	assert.False(t, bytes.Contains(data, entries[1].data[:64]))
	assert.False(t, bytes.Contains(data, []byte("hello")))

	tm, _, _, err := ParseTrailer(data)
	require.NoError(t, err)
	assert.Equal(t, m, tm, "the clear trailer carries the same manifest")
}

func TestBackupArchiveWrongKey(t *testing.T) {
	data, _ := writeArchive(t, testKey(t, 1), sampleEntries())
	_, err := NewReader(bytes.NewReader(data), testKey(t, 2))
	require.ErrorIs(t, err, ErrWrongKey)
	assert.Contains(t, err.Error(), "the archive was encrypted with key "+testKey(t, 1).ID())
}

func TestBackupArchiveDamageFails(t *testing.T) {
	data, _ := writeArchive(t, testKey(t, 1), sampleEntries())
	tm, raw, _, err := ParseTrailer(data)
	require.NoError(t, err)
	trailerStart := len(data) - trailerFixedLen - len(raw)
	_ = tm
	positions := map[string]int{
		"magic":          0,
		"header json":    len(headerMagic) + 10,
		"first chunk":    200 + len(headerMagic),
		"middle":         len(data) / 2,
		"last chunk":     trailerStart - 5,
		"trailer json":   trailerStart + 3,
		"trailer mac":    len(data) - trailerFixedLen + 1,
		"trailer length": len(data) - len(trailerMagic) - 1,
		"trailer magic":  len(data) - 1,
	}
	for name, pos := range positions {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(data)
			bad[pos] ^= 0x20
			_, _, err := readArchive(bad, testKey(t, 1))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongKey), err.Error())
		})
	}
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{0, 5, 30, len(data) / 3, trailerStart - 1, len(data) - 1} {
			_, _, err := readArchive(data[:n], testKey(t, 1))
			require.Error(t, err, "cut at %d", n)
		}
	})
	t.Run("body cut after a chunk", func(t *testing.T) {
		// Drop the last chunk but keep the trailer: the missing end is noticed.
		hdrLen := len(headerMagic) + 4 + int(uint32(data[8])<<24|uint32(data[9])<<16|uint32(data[10])<<8|uint32(data[11]))
		first := 4 + int(uint32(data[hdrLen])<<24|uint32(data[hdrLen+1])<<16|uint32(data[hdrLen+2])<<8|uint32(data[hdrLen+3]))
		cut := append(bytes.Clone(data[:hdrLen+first]), data[trailerStart:]...)
		_, _, err := readArchive(cut, testKey(t, 1))
		require.ErrorIs(t, err, ErrCorrupt)
	})
}

func TestBackupLoadKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"), 0o400))
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("AQEB"), 0o400))
	k, err := LoadKey(good, "")
	require.NoError(t, err)
	assert.Equal(t, testKey(t, 1).ID(), k.ID())
	k, err = LoadKey("", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
	require.NoError(t, err)
	assert.Equal(t, testKey(t, 1).ID(), k.ID())
	for _, tc := range []struct{ file, env, want string }{
		{"", "", "no backup key"},
		{short, "", "3 bytes, want 32"},
		{filepath.Join(dir, "missing"), "", "no such file"},
		{"", "%%%", "OMS_BACKUP_KEY: not base64"},
	} {
		_, err := LoadKey(tc.file, tc.env)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "AQEB", "the key never appears in an error")
	}
}

// syntheticYear writes empty objects named as a year of CronJobs would: hourly
// at :07, weekly on Sundays at 00:17, monthly on the 1st at 00:37.
// syntheticYear stores (with store) an empty object for every run of every tier in the year before end.
func syntheticYear(end time.Time, store func(key string)) []string {
	var keys []string
	put := func(tier string, at time.Time) {
		_, key := NewID(tier, at)
		store(key)
		keys = append(keys, key)
	}
	start := end.AddDate(-1, 0, 0)
	for d := start.Truncate(24 * time.Hour); d.Before(end); d = d.AddDate(0, 0, 1) {
		for h := range 24 {
			if at := d.Add(time.Duration(h)*time.Hour + 7*time.Minute); !at.Before(start) && at.Before(end) {
				put("hourly", at)
			}
		}
		if at := d.Add(17 * time.Minute); d.Weekday() == time.Sunday && !at.Before(start) && at.Before(end) {
			put("weekly", at)
		}
		if at := d.Add(37 * time.Minute); d.Day() == 1 && !at.Before(start) && at.Before(end) {
			put("monthly", at)
		}
	}
	return keys
}

func TestBackupPruneSyntheticYearKeepsExactlyGFS(t *testing.T) {
	dir := t.TempDir()
	pruneSyntheticYear(t, "file://"+dir, func(key string) {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, path.Dir(key)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, key), nil, 0o644))
	})
}

// The same prune through gs:// (gcsblob, paged listing, one delete per object) on the GCS emulator. The emulator's
// in-memory store scans every object per write and delete, so ~9000 archives take minutes: not with -short.
func TestBackupPruneSyntheticYearOnGCS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a year of archives on the GCS emulator takes minutes")
	}
	gcs := omstest.GCS(t, "oms-backups")
	pruneSyntheticYear(t, "gs://oms-backups", func(key string) {
		gcs.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "oms-backups", Name: key}})
	})
}

func pruneSyntheticYear(t *testing.T, bucketURL string, store func(key string)) {
	// Saturday 2026-11-21 14:30 UTC: the last hourly ran at 14:07, the last weekly on Sunday the 15th, the last monthly on the 1st.
	now := time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)
	begin := time.Now()
	all := syntheticYear(now, store)
	require.Greater(t, len(all), 365*24)
	t.Logf("stored %d archives in %s", len(all), time.Since(begin).Round(time.Millisecond))

	// The expected set, by counting back from now in calendar terms.
	var want []string
	for h := 0; h < 7*24; h++ { // hourly: the 168 runs of the last 7 days (14:07 today back to 14:07+1h 7 days ago)
		at := time.Date(2026, 11, 21, 14, 7, 0, 0, time.UTC).Add(-time.Duration(h) * time.Hour)
		want = append(want, "hourly/"+at.Format(timeLayout))
	}
	for _, day := range []int{15, 8, 1} { // weekly: Sundays within 28 days (Oct 25 is 27d 14h old, kept too)
		want = append(want, "weekly/"+time.Date(2026, 11, day, 0, 17, 0, 0, time.UTC).Format(timeLayout))
	}
	want = append(want, "weekly/"+time.Date(2026, 10, 25, 0, 17, 0, 0, time.UTC).Format(timeLayout))
	for m := 0; m < 12; m++ { // monthly: the 1st of the last 12 months (Dec 1 2025 is 355 days old)
		want = append(want, "monthly/"+time.Date(2026, time.November-time.Month(m), 1, 0, 37, 0, 0, time.UTC).Format(timeLayout))
	}
	sort.Strings(want)

	ctx := context.Background()
	b, err := OpenBucket(ctx, bucketURL)
	require.NoError(t, err)
	defer b.Close()

	deleted, kept, err := Prune(ctx, b, now, true)
	require.NoError(t, err)
	assert.Equal(t, len(want), kept)
	assert.Equal(t, len(all)-len(want), len(deleted))
	left, err := List(ctx, b)
	require.NoError(t, err)
	require.Len(t, left, len(all), "a dry run deletes nothing")

	_, _, err = Prune(ctx, b, now, false)
	require.NoError(t, err)
	left, err = List(ctx, b)
	require.NoError(t, err)
	var got []string
	for _, o := range left {
		got = append(got, o.Key[:len(o.Key)-len("-xxxxxxxx.omsbak")])
	}
	sort.Strings(got)
	assert.Equal(t, want, got)
	assert.Len(t, want, 168+4+12)

	// Prune is idempotent, and months later with no new backups it keeps each tier's newest.
	deleted, _, err = Prune(ctx, b, now, false)
	require.NoError(t, err)
	assert.Empty(t, deleted)
	_, kept, err = Prune(ctx, b, now.AddDate(2, 0, 0), false)
	require.NoError(t, err)
	assert.Equal(t, 3, kept)
	left, err = List(ctx, b)
	require.NoError(t, err)
	require.Len(t, left, 3)
	assert.Equal(t, "hourly/20261121T140700Z", left[2].Key[:len("hourly/20261121T140700Z")])
}

func TestBackupParseKey(t *testing.T) {
	id, key := NewID("monthly", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	o, ok := ParseKey(key)
	require.True(t, ok)
	assert.Equal(t, id, o.ID)
	assert.Equal(t, "monthly", o.Tier)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), o.Created)
	for _, bad := range []string{"daily/20260102T030405Z-0a0b0c0d.omsbak", "hourly/x.omsbak", "hourly/20260102T030405Z-0a0b0c0d.omsbak.tmp",
		"hourly/sub/20260102T030405Z-0a0b0c0d.omsbak", "hourly/20261302T030405Z-0a0b0c0d.omsbak"} {
		_, ok := ParseKey(bad)
		assert.False(t, ok, bad)
	}
}

func FuzzBackupReader(f *testing.F) {
	entries := []testEntry{{"registry.json", []byte(`{"accounts":[]}`)}, {"accounts/a.pgdump", bytes.Repeat([]byte("x"), 3000)}}
	good, _ := writeArchive(f, testKey(f, 1), entries)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good[:40]), good[len(good)-200:]...))
	f.Add([]byte(headerMagic + "\x00\x00\x00\x02{}"))
	f.Add([]byte("\x00\x00\x00\x02{}" + trailerMagic))
	want := map[string][]byte{}
	for _, e := range entries {
		want[e.name] = e.data
	}
	key := testKey(f, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, m, err := readArchive(data, key)
		if err != nil {
			return
		}
		// Whatever was changed, an archive that reads must carry exactly the original content.
		require.NotNil(t, m)
		for name, b := range want {
			require.True(t, bytes.Equal(b, got[name]), name)
		}
		require.Len(t, got, len(want)+1)
	})
}
