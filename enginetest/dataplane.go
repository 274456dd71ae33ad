package enginetest

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/omscloud/omscloud/inventory"
)

// DataPlane is a cluster whose nodes run containers for real (testtools/dataplane-up.sh): kubelets, containerd,
// kube-proxy and CoreDNS in network namespaces of its own. Its KubeCluster is reached from the host through
// k8s-nsproxy on 127.0.0.1.
type DataPlane struct {
	*KubeCluster
	// ControlPlaneNetns is the namespace of the API server, CoreDNS and the stand-ins' addresses.
	ControlPlaneNetns string
	Nodes             []DataPlaneNode
	bin               string
}

// DataPlaneNode is one node: what it registers as, and where it runs once started.
type DataPlaneNode struct {
	Name   string
	Labels map[string]string
	// Taints are key=value:Effect.
	Taints []string
	// Netns is its network namespace's name, IP its address, Dir its state (set by StartDataPlane).
	Netns, IP, Dir string
}

// DataPlaneOptions configure StartDataPlane.
type DataPlaneOptions struct {
	// Images is a directory of docker-archive tarballs imported into every node (testtools/images-build.sh).
	Images string
	// ExtraAddrs are given to the control-plane namespace, for stand-ins of managed services at private IPs.
	ExtraAddrs []string
}

// DataPlaneNodes are the nodes of a stack's node pools, perZone per pool and zone, labelled and tainted as GKE
// labels and taints them (Nodes, without kwok's marks).
func DataPlaneNodes(inv *inventory.Inventory, perZone int) ([]DataPlaneNode, error) {
	objs, err := Nodes(inv, perZone)
	if err != nil {
		return nil, err
	}
	out := make([]DataPlaneNode, 0, len(objs))
	for _, o := range objs {
		meta := o["metadata"].(map[string]any)
		n := DataPlaneNode{Name: meta["name"].(string), Labels: map[string]string{}}
		for k, v := range meta["labels"].(map[string]any) {
			// The kubelet sets these itself (the hostname from --hostname-override); "type: kwok" marks kwok's nodes.
			if k == "type" || k == "kubernetes.io/hostname" || k == "kubernetes.io/os" || k == "kubernetes.io/arch" {
				continue
			}
			n.Labels[k] = fmt.Sprint(v)
		}
		for _, t := range o["spec"].(map[string]any)["taints"].([]any) {
			m := t.(map[string]any)
			n.Taints = append(n.Taints, fmt.Sprintf("%v=%v:%v", m["key"], m["value"], m["effect"]))
		}
		out = append(out, n)
	}
	return out, nil
}

// DataPlaneBinaries reports a missing binary as ErrNotBuilt.
func DataPlaneBinaries() error {
	bin := KubeBinDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "k8s-pki",
		"kubelet", "kube-proxy", "coredns", "k8s-nsproxy"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("data plane %w: %s missing in %s: run testtools/k8s-build.sh", ErrNotBuilt, b, bin)
		}
	}
	for _, b := range []string{"containerd", "runc", "ctr", "iptables", "conntrack"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("data plane %w: %s: run scripts/install-dataplane.sh", ErrNotBuilt, b)
		}
	}
	return nil
}

// StartDataPlane starts the cluster with its state in a new temporary directory; it stops by itself when this
// process dies (DATAPLANE_OWNER_PID), Stop stops it earlier.
func StartDataPlane(projectDir string, nodes []DataPlaneNode, opts DataPlaneOptions) (*DataPlane, error) {
	if err := DataPlaneBinaries(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dataplane-")
	if err != nil {
		return nil, err
	}
	var spec strings.Builder
	for _, n := range nodes {
		labels := []string{}
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			labels = append(labels, k+"="+n.Labels[k])
		}
		taints := "-"
		if len(n.Taints) > 0 {
			taints = strings.Join(n.Taints, ",")
		}
		fmt.Fprintf(&spec, "%s %s %s\n", n.Name, strings.Join(labels, ","), taints)
	}
	nodesFile := filepath.Join(dir, "nodes")
	if err := os.WriteFile(nodesFile, []byte(spec.String()), 0o644); err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "state")
	cmd := exec.Command("bash", filepath.Join(projectDir, "testtools", "dataplane-up.sh"), state, nodesFile)
	cmd.Env = append(os.Environ(), fmt.Sprintf("DATAPLANE_OWNER_PID=%d", os.Getpid()), "K8S_BIN_DIR="+KubeBinDir(),
		"DATAPLANE_IMAGES="+opts.Images, "DATAPLANE_EXTRA_ADDRS="+strings.Join(opts.ExtraAddrs, " "))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testtools/dataplane-up.sh: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "enginetest: data plane of %d nodes up in %.1f s\n", len(nodes), time.Since(start).Seconds())
	k := &KubeCluster{Dir: state, Kubeconfig: filepath.Join(state, "kubeconfig"), projectDir: projectDir,
		down: "dataplane-down.sh", kubectl: filepath.Join(KubeBinDir(), "kubectl")}
	d := &DataPlane{KubeCluster: k, Nodes: slices.Clone(nodes), bin: KubeBinDir()}
	if err := d.load(); err != nil {
		_ = k.Stop()
		return nil, err
	}
	return d, nil
}

// load reads what dataplane-up.sh wrote into STATE_DIR/env.
func (d *DataPlane) load() error {
	if err := d.KubeCluster.load(); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(d.Dir, "env"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		key, v, _ := strings.Cut(sc.Text(), "=")
		v = strings.Trim(v, `"`)
		switch {
		case key == "DATAPLANE_CP_NS":
			d.ControlPlaneNetns = v
		case strings.HasPrefix(key, "DATAPLANE_NODE_"):
			f := strings.Fields(v)
			if len(f) != 4 || i >= len(d.Nodes) || f[0] != d.Nodes[i].Name {
				return fmt.Errorf("%s: unexpected %s", filepath.Join(d.Dir, "env"), sc.Text())
			}
			d.Nodes[i].Netns, d.Nodes[i].IP, d.Nodes[i].Dir = f[1], f[2], f[3]
			i++
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if d.ControlPlaneNetns == "" || i != len(d.Nodes) {
		return fmt.Errorf("%s: %d of %d nodes", filepath.Join(d.Dir, "env"), i, len(d.Nodes))
	}
	return nil
}

// Node is the node named name.
func (d *DataPlane) Node(name string) (DataPlaneNode, bool) {
	i := slices.IndexFunc(d.Nodes, func(n DataPlaneNode) bool { return n.Name == name })
	if i < 0 {
		return DataPlaneNode{}, false
	}
	return d.Nodes[i], true
}

// Forward listens on a free 127.0.0.1 port and forwards each connection to addr as seen from inside the network
// namespace netns (a node's, to reach a Service's ClusterIP through its kube-proxy). It returns the listen address.
func (d *DataPlane) Forward(ctx context.Context, netns, addr string) (string, error) {
	return d.nsproxy(ctx, "-netns", "/run/netns/"+netns, "-to", addr, "-listen", "127.0.0.1:0")
}

// Expose listens on listen inside the control-plane namespace and forwards each connection to to on the host: a
// process on 127.0.0.1 standing in for a managed service at a private IP.
func (d *DataPlane) Expose(ctx context.Context, listen, to string) error {
	_, err := d.nsproxy(ctx, "-netns", "/run/netns/"+d.ControlPlaneNetns, "-reverse", "-listen", listen, "-to", to)
	return err
}

// nsproxy starts k8s-nsproxy until ctx ends and returns its listen address.
func (d *DataPlane) nsproxy(ctx context.Context, args ...string) (string, error) {
	f, err := os.CreateTemp(d.Dir, "nsproxy-*.addr")
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "k8s-nsproxy"), append(args, "-addr-file", name)...)
	cmd.Stderr = os.Stderr
	// Gone with this process, even if it dies before ctx ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { _ = cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(name); err == nil && len(b) > 0 {
			return string(b), nil
		}
	}
	return "", fmt.Errorf("k8s-nsproxy %s: no listener after 10 s", strings.Join(args, " "))
}

// InNetns runs a command inside a network namespace (nsenter --net: the host's mount namespace) and returns its
// combined output.
func InNetns(ctx context.Context, netns string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + netns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", netns, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// CutNode takes a node off the network (its link down: its pods, kubelet and kube-proxy lose every peer at once,
// as a zone's network failing would); RestoreNode brings it back with the routes the link took with it.
func (d *DataPlane) CutNode(ctx context.Context, name string) error {
	i := slices.IndexFunc(d.Nodes, func(n DataPlaneNode) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("no node %s", name)
	}
	_, err := InNetns(ctx, d.Nodes[i].Netns, "ip", "link", "set", "eth0", "down")
	return err
}

// RestoreNode undoes CutNode: the link up, its default route and the routes to the other nodes' pods (dataplane-up.sh
// numbers node i's pods 10.244.i.0/24 and its address 10.250.0.(10+i)).
func (d *DataPlane) RestoreNode(ctx context.Context, name string) error {
	i := slices.IndexFunc(d.Nodes, func(n DataPlaneNode) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("no node %s", name)
	}
	ns := d.Nodes[i].Netns
	cmds := [][]string{{"ip", "link", "set", "eth0", "up"}, {"ip", "route", "replace", "default", "via", "10.250.0.1"}}
	for j := range d.Nodes {
		if j != i {
			cmds = append(cmds, []string{"ip", "route", "replace", fmt.Sprintf("10.244.%d.0/24", j+1), "via", fmt.Sprintf("10.250.0.%d", 11+j)})
		}
	}
	for _, c := range cmds {
		if _, err := InNetns(ctx, ns, c...); err != nil {
			return err
		}
	}
	return nil
}

// HostSysctlChanges lists the kernel-wide sysctls the kubelet wants to set whose host value differs from the one
// dataplane-up.sh found before any node started: the cluster must leave the host's kernel settings alone.
func (d *DataPlane) HostSysctlChanges() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, "host-sysctls"))
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, before, _ := strings.Cut(line, " ")
		now, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(now)) != before {
			changed = append(changed, fmt.Sprintf("%s: %s -> %s", name, before, strings.TrimSpace(string(now))))
		}
	}
	return changed, nil
}
