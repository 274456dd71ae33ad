package kubeverify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The control plane is started once per test binary, on first use, by testtools/k8s-up.sh, and stopped in TestMain.
// OMSCLOUD_KUBECONFIG points the tests at a cluster started by hand instead (testtools/k8s-up.sh DIR).
var (
	clusterOnce sync.Once
	shared      *cluster
	clusterErr  error
	stateDir    string
)

var errNoBinaries = errors.New("Kubernetes test binaries not built")

type cluster struct {
	kubectl, kubeconfig string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if stateDir != "" {
		out, err := exec.Command("bash", "../testtools/k8s-down.sh", stateDir).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8s-down: %v\n%s", err, out)
		}
	}
	os.Exit(code)
}

func binDir() string {
	if d := os.Getenv("K8S_BIN_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("OMSCLOUD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "omscloud")
	}
	return filepath.Join(cache, "k8s", "v1.33.13", "bin")
}

// requireCluster returns the shared cluster. Without the binaries it skips, except under CI=true where a missing
// binary is a failure.
func requireCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(startCluster)
	if clusterErr != nil {
		if errors.Is(clusterErr, errNoBinaries) && os.Getenv("CI") != "true" {
			t.Skipf("%v (run testtools/k8s-build.sh)", clusterErr)
		}
		t.Fatalf("Kubernetes control plane: %v", clusterErr)
	}
	return shared
}

func startCluster() {
	bin := binDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "k8s-pki"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			clusterErr = fmt.Errorf("%w: %s missing in %s", errNoBinaries, b, bin)
			return
		}
	}
	c := &cluster{kubectl: filepath.Join(bin, "kubectl"), kubeconfig: os.Getenv("OMSCLOUD_KUBECONFIG")}
	if c.kubeconfig == "" {
		dir, err := os.MkdirTemp("", "kubeverify-")
		if err != nil {
			clusterErr = err
			return
		}
		start := time.Now()
		cmd := exec.Command("bash", "../testtools/k8s-up.sh", dir)
		// The cluster dies with this test binary even if it is killed before TestMain can stop it.
		cmd.Env = append(os.Environ(), fmt.Sprintf("K8S_OWNER_PID=%d", os.Getpid()), "K8S_BIN_DIR="+bin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			clusterErr = fmt.Errorf("testtools/k8s-up.sh: %w\n%s", err, out)
			return
		}
		stateDir = dir
		c.kubeconfig = filepath.Join(dir, "kubeconfig")
		fmt.Fprintf(os.Stderr, "kubeverify: control plane up in %.1f s\n", time.Since(start).Seconds())
	}
	// Objects a stack leaves in the provider's default namespace get the same Pod Security checks.
	if _, err := c.run(nil, append([]string{"label", "--overwrite", "namespace", "default"}, restrictedLabels()...)...); err != nil {
		clusterErr = err
		return
	}
	shared = c
}

func restrictedLabels() []string {
	var out []string
	for _, mode := range []string{"enforce", "warn", "audit"} {
		out = append(out, "pod-security.kubernetes.io/"+mode+"=restricted")
	}
	return out
}

// result is one kubectl invocation.
type result struct {
	stdout, stderr string
}

// warnings returns the API server's warnings (kubectl prints them to stderr as "Warning: ...").
func (r result) warnings() []string {
	var out []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if w, ok := strings.CutPrefix(strings.TrimSpace(l), "Warning: "); ok {
			out = append(out, w)
		}
	}
	return out
}

func (c *cluster) run(stdin []byte, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		return r, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(r.stderr))
	}
	return r, nil
}

// apply server-side applies one manifest (or a v1 List) as Pulumi does; extra adds flags such as --dry-run=server.
func (c *cluster) apply(manifest map[string]any, extra ...string) (result, error) {
	body, err := json.Marshal(manifest)
	if err != nil {
		return result{}, err
	}
	args := append([]string{"apply", "--server-side", "--force-conflicts", "--field-manager", "pulumi-kubernetes", "--validate=strict", "-f", "-"}, extra...)
	return c.run(body, args...)
}

// create creates one manifest (kubectl create: an existing object of that name is an error, never an update).
func (c *cluster) create(manifest map[string]any, extra ...string) (result, error) {
	body, err := json.Marshal(manifest)
	if err != nil {
		return result{}, err
	}
	return c.run(body, append([]string{"create", "--validate=strict", "-f", "-"}, extra...)...)
}

// get returns the JSON of kubectl get.
func (c *cluster) get(args ...string) (map[string]any, error) {
	r, err := c.run(nil, append([]string{"get", "-o", "json"}, args...)...)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		return nil, fmt.Errorf("kubectl get %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

func list(items ...any) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}
