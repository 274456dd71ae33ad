package enginetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The real-Kubernetes half of the harness: a local control plane (testtools/k8s-up.sh: etcd, kube-apiserver,
// controller-manager, scheduler and kwok) behind every stack's GKE cluster, and the real Pulumi Kubernetes provider
// (testtools/k8s-provider-build.sh) deploying into it. The gcp stand-in answers the cluster's endpoint and CA with the
// local apiserver's (Cloud.SetClusterAPI), a stand-in gke-gcloud-auth-plugin hands out the admin credential, and
// kwok runs fake nodes shaped like the stack's node pools.

// ErrNotBuilt reports a binary the real-Kubernetes tests need that has not been built. Tests skip on it, except
// under CI=true, where it is a failure.
var ErrNotBuilt = errors.New("not built")

// ClusterAPI is the Kubernetes API server every GKE cluster answers with.
type ClusterAPI struct {
	// Endpoint is what GKE's `endpoint` output holds: host:port, without a scheme.
	Endpoint string
	// CACertificate is masterAuth.clusterCaCertificate: the CA's PEM, base64-encoded.
	CACertificate string
}

// SetClusterAPI makes every GKE cluster created from now on answer with api's endpoint and CA.
func (c *Cloud) SetClusterAPI(api ClusterAPI) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clusterAPI = &api
}

// answer overwrites a cluster's endpoint and CA outputs (nothing when a is nil).
func (a *ClusterAPI) answer(outputs resource.PropertyMap) {
	if a == nil {
		return
	}
	outputs["endpoint"] = resource.NewProperty(a.Endpoint)
	auth := resource.PropertyMap{}
	if v, ok := outputs["masterAuth"]; ok && v.IsObject() {
		auth = v.ObjectValue().Copy()
	}
	auth["clusterCaCertificate"] = resource.NewProperty(a.CACertificate)
	outputs["masterAuth"] = resource.NewObjectProperty(auth)
}

// DebugProvidersExcept is DebugProviders without the named packages, which the engine then loads as plugins.
func (p *Providers) DebugProvidersExcept(pkgs ...string) string {
	var keep []string
	for _, part := range strings.Split(p.DebugProviders(), ",") {
		pkg, _, _ := strings.Cut(part, ":")
		if !slices.Contains(pkgs, pkg) {
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, ",")
}

// CacheDir is the omscloud tool cache: $OMSCLOUD_CACHE, default ~/.cache/omscloud.
func CacheDir() string {
	if d := os.Getenv("OMSCLOUD_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "omscloud")
}

// KubernetesProviderRelease is the release of the one pulumi-kubernetes provider module version the module proxy
// serves (testtools/k8s-provider/go.mod); testtools/k8s-provider-build.sh builds it under this name.
const KubernetesProviderRelease = "4.25.0"

// KubernetesProviderBinary is the real pulumi-resource-kubernetes built by testtools/k8s-provider-build.sh.
func KubernetesProviderBinary() (string, error) {
	bin := filepath.Join(CacheDir(), "k8s-provider", KubernetesProviderRelease, "bin", "pulumi-resource-kubernetes")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("pulumi-resource-kubernetes %s %w (%v): run testtools/k8s-provider-build.sh", KubernetesProviderRelease, ErrNotBuilt, err)
	}
	return bin, nil
}

// KubeBinDir holds the control plane binaries of testtools/k8s-build.sh ($K8S_BIN_DIR overrides it).
func KubeBinDir() string {
	if d := os.Getenv("K8S_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), "k8s", "v1.33.13", "bin")
}

// KubeCluster is a local control plane started by testtools/k8s-up.sh.
type KubeCluster struct {
	// Dir holds its PKI, logs and kubeconfig; Kubeconfig is the admin's.
	Dir, Kubeconfig string
	// API is what the gcp stand-in answers for a GKE cluster.
	API        ClusterAPI
	projectDir string
	// down is the script that stops it (testtools/k8s-down.sh unless a data plane started it).
	down      string
	kubectl   string
	adminCert []byte
	adminKey  []byte
	client    *http.Client
}

// StartKubeCluster starts a control plane with its state in a new temporary directory. It stops by itself when
// this process dies (K8S_OWNER_PID); Stop stops it earlier. Missing binaries are ErrNotBuilt.
func StartKubeCluster(projectDir string) (*KubeCluster, error) {
	bin := KubeBinDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "k8s-pki"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("Kubernetes control plane %w: %s missing in %s: run testtools/k8s-build.sh", ErrNotBuilt, b, bin)
		}
	}
	var dir string
	// k8s-up.sh picks free ports, which another process on this shared machine may take before a component binds
	// them: then it starts again on new ones.
	for attempt := 1; ; attempt++ {
		var err error
		if dir, err = os.MkdirTemp("", "enginetest-k8s-"); err != nil {
			return nil, err
		}
		cmd := exec.Command("bash", filepath.Join(projectDir, "testtools", "k8s-up.sh"), dir)
		cmd.Env = append(os.Environ(), fmt.Sprintf("K8S_OWNER_PID=%d", os.Getpid()), "K8S_BIN_DIR="+bin)
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(string(out), "address already in use") {
			return nil, fmt.Errorf("testtools/k8s-up.sh: %w\n%s", err, out)
		}
		_ = os.RemoveAll(dir)
	}
	k := &KubeCluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), projectDir: projectDir, down: "k8s-down.sh",
		kubectl: filepath.Join(bin, "kubectl")}
	if err := k.load(); err != nil {
		_ = k.Stop()
		return nil, err
	}
	return k, nil
}

func (k *KubeCluster) load() error {
	pki := filepath.Join(k.Dir, "pki")
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return err
	}
	if k.adminCert, err = os.ReadFile(filepath.Join(pki, "admin.crt")); err != nil {
		return err
	}
	if k.adminKey, err = os.ReadFile(filepath.Join(pki, "admin.key")); err != nil {
		return err
	}
	cfg, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "server: https://"); ok {
			k.API.Endpoint = v
		}
	}
	if k.API.Endpoint == "" {
		return fmt.Errorf("%s names no https server", k.Kubeconfig)
	}
	k.API.CACertificate = base64.StdEncoding.EncodeToString(ca)
	pair, err := tls.X509KeyPair(k.adminCert, k.adminKey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	k.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}}
	return nil
}

// Stop stops the cluster (testtools/k8s-down.sh or dataplane-down.sh: only what the up script created) and removes
// its files.
func (k *KubeCluster) Stop() error {
	out, err := exec.Command("bash", filepath.Join(k.projectDir, "testtools", k.down), k.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testtools/%s: %w\n%s", k.down, err, out)
	}
	return nil
}

// Kubectl runs kubectl as the admin; stdin may be nil.
func (k *KubeCluster) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Apply server-side applies objects as one v1 List.
func (k *KubeCluster) Apply(ctx context.Context, objects ...map[string]any) error {
	if len(objects) == 0 {
		return nil
	}
	items := make([]any, len(objects))
	for i, o := range objects {
		items[i] = o
	}
	body, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		return err
	}
	_, err = k.Kubectl(ctx, body, "apply", "--server-side", "--field-manager", "enginetest", "-f", "-")
	return err
}

// Get returns the decoded JSON of `kubectl get -o json ARGS`.
func (k *KubeCluster) Get(ctx context.Context, args ...string) (map[string]any, error) {
	out, err := k.Kubectl(ctx, nil, append([]string{"get", "-o", "json"}, args...)...)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("kubectl get %s: %w", strings.Join(args, " "), err)
	}
	return v, nil
}

// AuthPlugin writes a stand-in gke-gcloud-auth-plugin into dir: it prints an ExecCredential carrying the admin's
// client certificate and key, as the real plugin prints one carrying a Google access token. Put dir first on the
// PATH of the engine.
func (k *KubeCluster) AuthPlugin(dir string) error {
	cred, err := json.Marshal(map[string]any{
		"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
		"status": map[string]any{"clientCertificateData": string(k.adminCert), "clientKeyData": string(k.adminKey)},
	})
	if err != nil {
		return err
	}
	credFile := filepath.Join(dir, "exec-credential.json")
	if err := os.WriteFile(credFile, cred, 0o600); err != nil {
		return err
	}
	script := "#!/bin/sh\n# Stand-in for gke-gcloud-auth-plugin (enginetest): the local apiserver's admin credential.\nexec cat '" + credFile + "'\n"
	return os.WriteFile(filepath.Join(dir, "gke-gcloud-auth-plugin"), []byte(script), 0o755)
}

// WatchNEGServices feeds the behaviour model what GKE's NEG controller sees: every Service on the server annotated
// cloud.google.com/neg is reported to cloud.KubernetesApplied, as the in-process Kubernetes stand-in reports the
// Services it applies. It polls until ctx ends.
func (k *KubeCluster) WatchNEGServices(ctx context.Context, cloud *Cloud) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	url := "https://" + k.API.Endpoint + "/api/v1/services"
	for {
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
			if resp, err := k.client.Do(req); err == nil {
				var list struct {
					Items []struct {
						Metadata struct {
							Annotations map[string]string `json:"annotations"`
						} `json:"metadata"`
						Spec struct {
							Selector map[string]string `json:"selector"`
						} `json:"spec"`
					} `json:"items"`
				}
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&list) == nil {
					for _, s := range list.Items {
						if neg, ok := s.Metadata.Annotations["cloud.google.com/neg"]; ok {
							selector := resource.PropertyMap{}
							for k, v := range s.Spec.Selector {
								selector[resource.PropertyKey(k)] = resource.NewProperty(v)
							}
							cloud.KubernetesApplied("kubernetes:core/v1:Service", resource.PropertyMap{
								"metadata": resource.NewObjectProperty(resource.PropertyMap{
									"annotations": resource.NewObjectProperty(resource.PropertyMap{
										"cloud.google.com/neg": resource.NewProperty(neg),
									}),
								}),
								"spec": resource.NewObjectProperty(resource.PropertyMap{"selector": resource.NewObjectProperty(selector)}),
							})
						}
					}
				}
				resp.Body.Close()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// nodeTaintEffects maps GKE's taint effects to Kubernetes'.
var nodeTaintEffects = map[string]string{"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute"}

// Nodes are the kwok nodes that stand in for a stack's node pools: perZone nodes per pool and zone, labelled as GKE
// labels them (hostname, zone, region, node pool) plus the pool's own labels, with the pool's taints. kwok manages
// them (annotation kwok.x-k8s.io/node=fake); they carry no kwok taint, so the product's pods land on them unchanged.
func Nodes(inv *inventory.Inventory, perZone int) ([]map[string]any, error) {
	var out []map[string]any
	for _, p := range inv.OfType("gcp:container/nodePool:NodePool") {
		pool := p.String("name")
		zones := p.Strings("nodeLocations")
		if pool == "" || len(zones) == 0 {
			return nil, fmt.Errorf("node pool %s: no name or nodeLocations", p.Name)
		}
		labels := map[string]any{}
		if l, ok := p.Get("nodeConfig.labels"); ok {
			if m, ok := l.(map[string]any); ok {
				for k, v := range m {
					labels[k] = v
				}
			}
		}
		taints := []any{}
		if ts, ok := p.Get("nodeConfig.taints"); ok {
			list, _ := ts.([]any)
			for _, t := range list {
				m, _ := t.(map[string]any)
				effect, ok := nodeTaintEffects[fmt.Sprint(m["effect"])]
				if !ok {
					return nil, fmt.Errorf("node pool %s: taint effect %v", p.Name, m["effect"])
				}
				taints = append(taints, map[string]any{"key": m["key"], "value": m["value"], "effect": effect})
			}
		}
		for _, zone := range zones {
			for i := 1; i <= perZone; i++ {
				name := fmt.Sprintf("%s-%s-%d", p.Name, zone, i)
				l := map[string]any{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": zone[:strings.LastIndex(zone, "-")],
					"cloud.google.com/gke-nodepool": pool, "type": "kwok",
				}
				for k, v := range labels {
					l[k] = v
				}
				out = append(out, map[string]any{
					"apiVersion": "v1", "kind": "Node",
					"metadata": map[string]any{
						"name": name, "labels": l, "annotations": map[string]any{"kwok.x-k8s.io/node": "fake"},
					},
					"spec": map[string]any{"taints": taints},
				})
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the stack declares no node pools")
	}
	return out, nil
}

// Volumes stand in for GKE's CSI provisioner, which kwok cannot run: each storage class the stack's claims name and
// it does not declare itself (GKE's built-in premium-rwo) as StorageClass, and for every claim template enough local PersistentVolumes pinned to each node for all its
// replicas, so that volume binding takes part in placement as zonal disks do on GKE. Each volume's path is
// root/<its name>: a directory that exists on the node, for nodes that mount it (DataPlane).
func Volumes(inv *inventory.Inventory, nodes []map[string]any, root string) ([]map[string]any, error) {
	declared := map[string]bool{}
	for _, sc := range inv.OfType("kubernetes:storage.k8s.io/v1:StorageClass") {
		declared[sc.String("metadata.name")] = true
	}
	var out []map[string]any
	classes := map[string]bool{}
	for _, typ := range []string{"kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:PersistentVolumeClaim"} {
		for _, r := range inv.OfType(typ) {
			owner := r.String("metadata.name")
			var templates []any
			replicas := 1
			if typ == "kubernetes:apps/v1:StatefulSet" {
				t, _ := r.Get("spec.volumeClaimTemplates")
				templates, _ = t.([]any)
				if n, ok := r.Number("spec.replicas"); ok {
					replicas = int(n)
				}
			} else {
				templates = []any{r.Inputs}
			}
			for ti, t := range templates {
				tm, _ := t.(map[string]any)
				spec, _ := tm["spec"].(map[string]any)
				class, _ := spec["storageClassName"].(string)
				if class == "" {
					return nil, fmt.Errorf("%s %s: a claim without storageClassName", typ, owner)
				}
				res, _ := spec["resources"].(map[string]any)
				requests, _ := res["requests"].(map[string]any)
				size, _ := requests["storage"].(string)
				if size == "" {
					return nil, fmt.Errorf("%s %s: a claim without a storage request", typ, owner)
				}
				if !declared[class] && !classes[class] {
					classes[class] = true
					out = append(out, StorageClass(class))
				}
				for _, n := range nodes {
					node := n["metadata"].(map[string]any)["name"].(string)
					for j := 0; j < replicas; j++ {
						name := fmt.Sprintf("%s-%s-%d-%d", node, owner, ti, j)
						out = append(out, map[string]any{
							"apiVersion": "v1", "kind": "PersistentVolume",
							"metadata": map[string]any{"name": name},
							"spec": map[string]any{
								"capacity":                      map[string]any{"storage": size},
								"accessModes":                   spec["accessModes"],
								"storageClassName":              class,
								"persistentVolumeReclaimPolicy": "Retain",
								"local":                         map[string]any{"path": path.Join(root, name)},
								"nodeAffinity": map[string]any{"required": map[string]any{"nodeSelectorTerms": []any{
									map[string]any{"matchExpressions": []any{map[string]any{
										"key": "kubernetes.io/hostname", "operator": "In", "values": []any{node},
									}}},
								}}},
							},
						})
					}
				}
			}
		}
	}
	return out, nil
}

// StorageClass stands in for a GKE built-in storage class such as premium-rwo: no provisioner (kwok runs no CSI
// driver; volumes are pre-created), binding on first consumer as GKE's do, and expansion allowed as GKE's do (the PD
// CSI driver resizes; https://cloud.google.com/kubernetes-engine/docs/how-to/volume-expansion): without it the API
// server's PersistentVolumeClaimResize admission refuses to grow a claim.
func StorageClass(name string) map[string]any {
	return map[string]any{
		"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
		"metadata":             map[string]any{"name": name},
		"provisioner":          "kubernetes.io/no-provisioner",
		"volumeBindingMode":    "WaitForFirstConsumer",
		"allowVolumeExpansion": true,
	}
}

// PrepareFor gives the cluster what a stack's GKE cluster has before any workload: its node pools as kwok nodes
// (perZone per pool and zone, Ready) and its storage.
func (k *KubeCluster) PrepareFor(ctx context.Context, inv *inventory.Inventory, perZone int) error {
	nodes, err := Nodes(inv, perZone)
	if err != nil {
		return err
	}
	volumes, err := Volumes(inv, nodes, "/mnt")
	if err != nil {
		return err
	}
	if err := k.Apply(ctx, append(nodes, volumes...)...); err != nil {
		return err
	}
	names := []string{"wait", "--for=condition=Ready", "--timeout=120s"}
	for _, n := range nodes {
		names = append(names, "node/"+n["metadata"].(map[string]any)["name"].(string))
	}
	_, err = k.Kubectl(ctx, nil, names...)
	return err
}

// AttachRealKubernetes makes the environment deploy through the real Kubernetes provider into k: the provider
// binary is installed into the environment's own PULUMI_HOME under the version the SDK asks for, ambient plugins
// are ignored, kubernetes leaves PULUMI_DEBUG_PROVIDERS (the engine cancels a debug provider after each operation,
// which the real one does not survive), the stand-in auth plugin goes first on PATH, every GKE cluster answers
// with k's endpoint and CA, and the NEG controller of the model watches k's Services until the test ends.
func (e *Env) AttachRealKubernetes(t testing.TB, k *KubeCluster, providerBinary string) {
	t.Helper()
	ctx := context.Background()
	bin := t.TempDir()
	if err := k.AuthPlugin(bin); err != nil {
		t.Fatalf("auth plugin: %v", err)
	}
	e.Vars["PULUMI_IGNORE_AMBIENT_PLUGINS"] = "true"
	e.Vars["PULUMI_DEBUG_PROVIDERS"] = e.Providers.DebugProvidersExcept("kubernetes")
	e.Vars["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	var env []string
	for key, v := range e.Vars {
		env = append(env, key+"="+v)
	}
	slices.Sort(env)
	if _, stderr, _, err := e.Command.Run(ctx, e.WorkDir, nil, nil, nil, env,
		"plugin", "install", "resource", "kubernetes", PluginVersions["kubernetes"], "--file", providerBinary); err != nil {
		t.Fatalf("pulumi plugin install kubernetes: %v\n%s", err, stderr)
	}
	e.Providers.Cloud.SetClusterAPI(k.API)
	watch, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		k.WatchNEGServices(watch, e.Providers.Cloud)
	}()
	t.Cleanup(func() { stop(); wg.Wait() })
}
