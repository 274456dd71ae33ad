package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// (local, tests)
	_ "gocloud.dev/blob/gcsblob"  // gs:// (GCP, Workload Identity credentials)
	"gocloud.dev/gcerrors"
)

// Tiers and how long prune keeps each (the bucket's lifecycle rules are the backstop).
var Retention = map[string]time.Duration{
	"hourly":  7 * 24 * time.Hour,
	"weekly":  28 * 24 * time.Hour,
	"monthly": 365 * 24 * time.Hour,
}

// TierNames lists the tiers in a stable order.
var TierNames = []string{"hourly", "weekly", "monthly"}

const (
	suffix     = ".omsbak"
	timeLayout = "20060102T150405Z"
)

var namePattern = regexp.MustCompile(`^(hourly|weekly|monthly)/(\d{8}T\d{6}Z)-([0-9a-f]{8})\.omsbak$`)

// Object is one archive in the bucket, known from its name and size.
type Object struct {
	Key     string    `json:"key"`
	ID      string    `json:"id"`
	Tier    string    `json:"tier"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

// NewID returns a new archive id and its object key.
func NewID(tier string, now time.Time) (id, key string) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id = now.UTC().Format(timeLayout) + "-" + hex.EncodeToString(b)
	return id, tier + "/" + id + suffix
}

// ParseKey parses an object key written by NewID.
func ParseKey(key string) (Object, bool) {
	m := namePattern.FindStringSubmatch(key)
	if m == nil {
		return Object{}, false
	}
	t, err := time.Parse(timeLayout, m[2])
	if err != nil {
		return Object{}, false
	}
	return Object{Key: key, ID: m[2] + "-" + m[3], Tier: m[1], Created: t}, true
}

// OpenBucket opens a bucket URL: file:///dir or gs://bucket (optionally with ?prefix=).
func OpenBucket(ctx context.Context, url string) (*blob.Bucket, error) {
	if !strings.HasPrefix(url, "file://") && !strings.HasPrefix(url, "gs://") {
		return nil, fmt.Errorf("bucket URL %q: use gs://<bucket> or file:///<dir>", url)
	}
	if strings.HasPrefix(url, "file://") && !strings.Contains(url, "?") {
		// Write through a temp file in the target directory; don't leave .attrs sidecars.
		url += "?no_tmp_dir=true&metadata=skip&create_dir=true"
	}
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", url, err)
	}
	return b, nil
}

// List returns every archive in the bucket, oldest first. Objects whose names
// are not archive names are ignored (and never pruned).
func List(ctx context.Context, b *blob.Bucket) ([]Object, error) {
	var out []Object
	for _, tier := range TierNames {
		it := b.List(&blob.ListOptions{Prefix: tier + "/"})
		for {
			lo, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list %s/: %w", tier, err)
			}
			if o, ok := ParseKey(lo.Key); ok {
				o.Size = lo.Size
				out = append(out, o)
			}
		}
	}
	slices.SortFunc(out, func(a, b Object) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// Find picks an archive by id (or key), or the newest when id is empty.
func Find(objs []Object, id string) (Object, error) {
	if id == "" {
		if len(objs) == 0 {
			return Object{}, errors.New("no backup in the bucket")
		}
		return objs[len(objs)-1], nil
	}
	for _, o := range objs {
		if o.ID == id || o.Key == id {
			return o, nil
		}
	}
	return Object{}, fmt.Errorf("--id %q: no such backup (oms backup list shows the ids)", id)
}

// ReadManifest reads an archive's trailer with two range reads. It is not
// authenticated (that needs the key): list uses it for display only.
func ReadManifest(ctx context.Context, b *blob.Bucket, o Object) (m *Manifest, raw, mac []byte, err error) {
	if o.Size < 12 {
		return nil, nil, nil, fmt.Errorf("%s: %w: %d bytes", o.Key, ErrCorrupt, o.Size)
	}
	last, err := readRange(ctx, b, o.Key, o.Size-12, 12)
	if err != nil {
		return nil, nil, nil, err
	}
	n, err := TrailerLen(last)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", o.Key, err)
	}
	if int64(n) > o.Size {
		return nil, nil, nil, fmt.Errorf("%s: %w: trailer longer than the object", o.Key, ErrCorrupt)
	}
	tail, err := readRange(ctx, b, o.Key, o.Size-int64(n), int64(n))
	if err != nil {
		return nil, nil, nil, err
	}
	m, raw, mac, err = ParseTrailer(tail)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", o.Key, err)
	}
	return m, raw, mac, nil
}

func readRange(ctx context.Context, b *blob.Bucket, key string, off, n int64) ([]byte, error) {
	r, err := b.NewRangeReader(ctx, key, off, n, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return out, nil
}

// Keep computes the grandfather-father-son set: an archive is kept while it
// is younger than its tier's retention, and the newest archive of each tier
// is always kept (a stopped CronJob must not leave a tier empty).
func Keep(objs []Object, now time.Time) map[string]bool {
	keep := map[string]bool{}
	newest := map[string]Object{}
	for _, o := range objs {
		if now.Sub(o.Created) < Retention[o.Tier] {
			keep[o.Key] = true
		}
		if n, ok := newest[o.Tier]; !ok || o.Created.After(n.Created) || (o.Created.Equal(n.Created) && o.Key > n.Key) {
			newest[o.Tier] = o
		}
	}
	for _, o := range newest {
		keep[o.Key] = true
	}
	return keep
}

// Prune deletes the archives outside the GFS set (none with dryRun) and returns them.
func Prune(ctx context.Context, b *blob.Bucket, now time.Time, dryRun bool) (deleted []Object, kept int, err error) {
	objs, err := List(ctx, b)
	if err != nil {
		return nil, 0, err
	}
	keep := Keep(objs, now)
	for _, o := range objs {
		if keep[o.Key] {
			kept++
			continue
		}
		if !dryRun {
			if err := b.Delete(ctx, o.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				return deleted, kept, fmt.Errorf("delete %s: %w", o.Key, err)
			}
		}
		deleted = append(deleted, o)
	}
	return deleted, kept, nil
}
