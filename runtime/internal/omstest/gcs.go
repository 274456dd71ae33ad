package omstest

import (
	"io"
	"net/url"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/stretchr/testify/require"
)

// GCS starts a GCS emulator (fake-gcs-server, in memory) in this process on 127.0.0.1 with the given buckets, and
// points gocloud's gcsblob at it for the test (STORAGE_EMULATOR_HOST: plain HTTP, no credentials). Tests that use
// it cannot run in parallel (the variable is process-wide). Stopped at cleanup.
func GCS(t testing.TB, buckets ...string) *fakestorage.Server {
	t.Helper()
	// The storage client reads objects at /<bucket>/<object>; the emulator serves that path only for its public
	// host (/work/shared/notes/real-providers.md, "GCS emulator").
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", Writer: io.Discard,
	})
	require.NoError(t, err, "start the GCS emulator")
	t.Cleanup(srv.Stop)
	u, err := url.Parse(srv.URL())
	require.NoError(t, err)
	t.Setenv("STORAGE_EMULATOR_HOST", u.Host)
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	return srv
}
