package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

// TestDevStartsWithNoConfigurationServesTheAPIAndDrainsOnSIGTERM runs the real
// binary the way a developer would: no database, broker or cache configured.
func TestDevStartsWithNoConfigurationServesTheAPIAndDrainsOnSIGTERM(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	cacheHome := t.TempDir()
	// Only what any shell has, plus a drain delay long enough to observe.
	p := Start(t, "dev", map[string]string{"HOME": cacheHome, "XDG_CACHE_HOME": cacheHome, "OMS_DRAIN_DELAY": "1500ms"},
		"dev", "--listen", "127.0.0.1:0")
	var addr, key string
	eventually(t, 30*time.Second, "oms dev prints its address and API key", func() bool {
		out := p.Stdout()
		if m := regexp.MustCompile(`serving http://(\S+)`).FindStringSubmatch(out); m != nil {
			addr = m[1]
		}
		if m := regexp.MustCompile(`API key: (oms_\S+)`).FindStringSubmatch(out); m != nil {
			key = m[1]
		}
		return addr != "" && key != ""
	})
	assert.Equal(t, p.Addr, addr)
	assert.DirExists(t, filepath.Join(cacheHome, "omscloud", "dev", "postgres"), "the cluster lives under the user cache dir")

	c := &Client{T: t, Base: "http://" + addr, Key: key}
	c.JSON("GET", "/readyz", nil, http.StatusOK, nil)
	c.JSON("PUT", "/v1/locations/st-1", map[string]any{"name": "Store", "type": "store", "lat": 52.37, "lon": 4.89}, http.StatusCreated, nil)
	c.JSON("POST", "/v1/inventory/batches", `{"sku":"A","location":"st-1","onHand":3}`+"\n", http.StatusOK, nil,
		"Content-Type", "application/x-ndjson")
	var o oms.Order
	c.JSON("POST", "/v1/orders", map[string]any{"ref": "dev-1", "items": []map[string]any{{"sku": "A", "qty": 2}},
		"delivery": map[string]any{"type": "CC", "location": "st-1"}}, http.StatusCreated, &o, "Idempotency-Key", "dev-1")
	// No RabbitMQ: the worker consumes the outbox straight from PostgreSQL.
	eventually(t, 20*time.Second, "the order allocated by the in-process worker", func() bool {
		var got oms.Order
		c.JSON("GET", "/v1/orders/"+o.ID, nil, http.StatusOK, &got)
		return got.Status == oms.StatusAllocated
	})
	var lv oms.StockLevel
	c.JSON("GET", "/v1/inventory/st-1/A", nil, http.StatusOK, &lv)
	assert.EqualValues(t, 1, lv.Available)

	// SIGTERM: /readyz turns 503 while draining, then the process exits cleanly
	// within the grace period and stops its PostgreSQL.
	pgPort := devPostgresPort(t, p.LogPath)
	// A batch upload in flight when SIGTERM arrives must complete.
	pr, pw := io.Pipe()
	inflight := make(chan Reply, 1)
	go func() {
		r := c.Call(context.Background(), "POST", "/v1/inventory/batches", pr, "Content-Type", "text/csv")
		if r.Err != nil {
			t.Errorf("in-flight batch: %v", r.Err)
		}
		inflight <- r
	}()
	fmt.Fprintln(pw, "sku,location,on_hand")
	for i := range 500 {
		fmt.Fprintf(pw, "S-%d,st-1,%d\n", i, i)
	}
	start := time.Now()
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	eventually(t, 5*time.Second, "/readyz 503 while draining", func() bool {
		code, _ := c.Do("GET", "/readyz", nil)
		return code == http.StatusServiceUnavailable
	})
	code, _ := c.Do("GET", "/healthz", nil)
	assert.Equal(t, http.StatusOK, code, "still alive while draining")
	time.Sleep(2 * time.Second) // past the drain delay: the listener is closed, the upload still open
	for i := 500; i < 1000; i++ {
		fmt.Fprintf(pw, "S-%d,st-1,%d\n", i, i)
	}
	require.NoError(t, pw.Close())
	resp := <-inflight
	require.NoError(t, resp.Err)
	var res oms.BatchResult
	require.NoError(t, json.Unmarshal(resp.Body, &res))
	assert.Equal(t, http.StatusOK, resp.Status)
	assert.EqualValues(t, 1000, res.Accepted, "the in-flight request finished during the drain")
	select {
	case <-p.Exited:
		require.NoError(t, p.ExitErr, "exit status")
	case <-time.After(25 * time.Second):
		t.Fatal("oms dev did not exit within the grace period")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	_, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pgPort), time.Second)
	assert.Error(t, err, "its PostgreSQL stopped too")
}

func devPostgresPort(t *testing.T, logPath string) int {
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct {
			Msg         string
			PrimaryPort int `json:"primary_port"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "localenv: postgres ready" {
			return rec.PrimaryPort
		}
	}
	t.Fatal("no postgres port in the dev log")
	return 0
}
