package localenvtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
)

type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                      {}
func (r *recordingTB) Fatal(args ...any)            { r.fatal = fmt.Sprint(args...) }
func (r *recordingTB) Skip(args ...any)             { r.skip = fmt.Sprint(args...) }
func (r *recordingTB) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }

func TestRequireBinariesFailsInCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"true", true}, {"", false}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := &recordingTB{TB: t}
			RequireBinaries(rec, "sh", "no-such-service-binary")
			if tc.wantFail {
				assert.Contains(t, rec.fatal, "no-such-service-binary")
				assert.Empty(t, rec.skip)
			} else {
				assert.Contains(t, rec.skip, "no-such-service-binary")
				assert.Empty(t, rec.fatal)
			}
			assert.NotContains(t, rec.fatal+rec.skip, "sh,", "installed binaries are not reported")
		})
	}
}

func TestAbandonedSharedDirsAreRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	mk := func(name, owner string) string {
		dir := filepath.Join(os.TempDir(), name)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644))
		}
		return dir
	}
	live := mk("localenv-pg-live", fmt.Sprintf("%d %s\n", os.Getpid(), localenv.ProcessStartTime(os.Getpid())))
	reused := mk("localenv-pg-reused", fmt.Sprintf("%d %s\n", os.Getpid(), "1")) // same PID, another process
	foreign := mk("localenv-pg-foreign", "")                                     // no owner file: not ours
	removeAbandonedSharedDirs()
	assert.DirExists(t, live, "a running owner keeps its directory")
	assert.NoDirExists(t, reused, "a dead owner's directory is removed")
	assert.DirExists(t, foreign)
}
