package backup

import (
	"os"
	"testing"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

// TestMain stops the shared service instances (localenv) and the shared cluster (omstest) once every test has run.
func TestMain(m *testing.M) {
	code := localenvtest.RunTests(m)
	omstest.Stop()
	os.Exit(code)
}
