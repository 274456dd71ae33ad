package systemtest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/internal/procstat"
)

// TestServePeakMemoryOnHostileBodies starts `oms serve` as its own process once per crafted body, sends that body,
// and reads the process's peak RSS (VmHWM): a ~110 KB YAML workflow repeating a 100 KB anchor 2500 times (250 MB
// expanded) and a CSV batch with one 100 MB field. OMS_BINARY measures another build the same way (the numbers before
// the fix came from the previous commit's binary); the bound is asserted only on this tree's build.
func TestServePeakMemoryOnHostileBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100 MB")
	}
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "info"}
	MustRun(t, env, "migrate")

	yamlBomb := "name: bomb\ndescription: &a " + strings.Repeat("x", 100_000) + "\nrules: [" + strings.Repeat("*a,", 2500) + "*a]\n"
	csvField := "sku,location,on_hand\n" + strings.Repeat("x", 100<<20) + ",st-1,1\nA,st-1,5\n"
	for i, tc := range []struct {
		name, method, path, ctype, body string
		want                            []int
	}{
		{"yaml alias expansion", "PUT", "/v1/workflows/bomb", "application/yaml", yamlBomb, []int{400, 413}},
		{"csv 100 MB field", "POST", "/v1/inventory/batches", "text/csv", csvField, []int{200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := Start(t, "serve", env, "serve")
			key := drillAccount(t, api.URL(), fmt.Sprintf("bounds-%d", i))
			mustCall(t, "PUT", api.URL()+"/v1/locations/st-1", key, map[string]any{"name": "Store", "type": "store", "lat": 52.37, "lon": 4.89},
				http.StatusCreated, nil)
			idle := vmHWM(t, api.Cmd.Process.Pid)
			req, err := http.NewRequestWithContext(t.Context(), tc.method, api.URL()+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.Contains(t, tc.want, resp.StatusCode, string(body))
			peak := vmHWM(t, api.Cmd.Process.Pid)
			t.Logf("%s: %d bytes sent, answered %d %.200s; oms serve peak RSS (VmHWM) %d MB before the request, %d MB after",
				tc.name, len(tc.body), resp.StatusCode, strings.TrimSpace(string(body)), idle>>20, peak>>20)
			if os.Getenv("OMS_BINARY") == "" {
				assert.Less(t, peak-idle, int64(64<<20), "the request costs a bounded amount of memory")
			}
		})
	}
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	n, err := procstat.PeakRSS(pid)
	require.NoError(t, err)
	return n
}
