package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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
	bin := omsBinary(t)
	cacheHome := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "dev.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()

	cmd := exec.Command(bin, "dev", "--listen", "127.0.0.1:0")
	// Only what any shell has, plus a drain delay long enough to observe.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cacheHome, "XDG_CACHE_HOME=" + cacheHome, "OMS_DRAIN_DELAY=1500ms"}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("oms dev log:\n%s", b)
		}
	})

	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr, key string
	deadline := time.After(90 * time.Second)
	for addr == "" || key == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "oms dev exited before serving")
			if m := regexp.MustCompile(`serving http://(\S+)`).FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
			if m := regexp.MustCompile(`API key: (oms_\S+)`).FindStringSubmatch(l); m != nil {
				key = m[1]
			}
		case <-deadline:
			t.Fatal("oms dev did not start within 90s")
		}
	}
	go func() {
		for range lines {
		}
	}()
	assert.DirExists(t, filepath.Join(cacheHome, "omscloud", "dev", "postgres"), "the cluster lives under the user cache dir")

	c := &client{t: t, base: "http://" + addr, key: key}
	c.json("GET", "/readyz", nil, http.StatusOK, nil)
	c.json("PUT", "/v1/locations/st-1", map[string]any{"name": "Store", "type": "store", "lat": 52.37, "lon": 4.89}, http.StatusCreated, nil)
	c.json("POST", "/v1/inventory/batches", `{"sku":"A","location":"st-1","onHand":3}`+"\n", http.StatusOK, nil,
		"Content-Type", "application/x-ndjson")
	var o oms.Order
	c.json("POST", "/v1/orders", map[string]any{"ref": "dev-1", "items": []map[string]any{{"sku": "A", "qty": 2}},
		"delivery": map[string]any{"type": "CC", "location": "st-1"}}, http.StatusCreated, &o, "Idempotency-Key", "dev-1")
	// No RabbitMQ: the worker consumes the outbox straight from PostgreSQL.
	eventually(t, 20*time.Second, "the order allocated by the in-process worker", func() bool {
		var got oms.Order
		c.json("GET", "/v1/orders/"+o.ID, nil, http.StatusOK, &got)
		return got.Status == oms.StatusAllocated
	})
	var lv oms.StockLevel
	c.json("GET", "/v1/inventory/st-1/A", nil, http.StatusOK, &lv)
	assert.EqualValues(t, 1, lv.Available)

	// SIGTERM: /readyz turns 503 while draining, then the process exits cleanly
	// within the grace period and stops its PostgreSQL.
	pgPort := devPostgresPort(t, logPath)
	// A batch upload in flight when SIGTERM arrives must complete.
	pr, pw := io.Pipe()
	inflight := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("POST", c.base+"/v1/inventory/batches", pr)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight batch: %v", err)
			resp = nil
		}
		inflight <- resp
	}()
	fmt.Fprintln(pw, "sku,location,on_hand")
	for i := range 500 {
		fmt.Fprintf(pw, "S-%d,st-1,%d\n", i, i)
	}
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	eventually(t, 5*time.Second, "/readyz 503 while draining", func() bool {
		code, _ := c.do("GET", "/readyz", nil)
		return code == http.StatusServiceUnavailable
	})
	code, _ := c.do("GET", "/healthz", nil)
	assert.Equal(t, http.StatusOK, code, "still alive while draining")
	time.Sleep(2 * time.Second) // past the drain delay: the listener is closed, the upload still open
	for i := 500; i < 1000; i++ {
		fmt.Fprintf(pw, "S-%d,st-1,%d\n", i, i)
	}
	require.NoError(t, pw.Close())
	resp := <-inflight
	require.NotNil(t, resp)
	var res oms.BatchResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1000, res.Accepted, "the in-flight request finished during the drain")
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		require.NoError(t, err, "exit status")
	case <-time.After(25 * time.Second):
		t.Fatal("oms dev did not exit within the grace period")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	_, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pgPort), time.Second)
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
