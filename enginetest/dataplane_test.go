package enginetest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cloudSQLIP is where the sandbox's Cloud SQL instance answers on the data plane.
const cloudSQLIP = "10.30.0.3"

// TestSandboxOnRealKubelets deploys the sandbox stack through the real engine and the real Kubernetes provider onto
// nodes that run its containers (DataPlane): images built from this tree's runtime and Debian's Redis, RabbitMQ and
// curl, a PostgreSQL with TLS where the Cloud SQL private IP points. Every pod runs as rendered; up succeeds only
// when every rollout is ready and the migrate and smoke Jobs have completed for real.
func TestSandboxOnRealKubelets(t *testing.T) {
	if err := enginetest.DataPlaneBinaries(); err != nil {
		skipOrFail(t, err)
	}
	env := enginetest.New(t)
	providerBin, err := enginetest.KubernetesProviderBinary()
	if err != nil {
		skipOrFail(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	const stack = "sandbox"
	sf, err := stacks.LoadStackFile(env.WorkDir, stack)
	require.NoError(t, err)
	cfg, inv, err := stacks.Plan(sf)
	require.NoError(t, err)

	timings := []string{}
	timed := func(what string, f func()) {
		start := time.Now()
		f()
		timings = append(timings, fmt.Sprintf("%s %.1fs", what, time.Since(start).Seconds()))
	}
	defer func() { t.Logf("data-plane timings: %s", strings.Join(timings, ", ")) }()

	var images string
	// The release's repository with a tag of this tree's build in place of the tested digest: the nodes find it
	// imported, nothing is pulled.
	repo, _, _ := strings.Cut(cfg.Runtime.Image, "@")
	blue, green, broken := repo+":dataplane-blue", repo+":dataplane-green", repo+":dataplane-smoke-fails"
	timed("images", func() { images = buildImages(t, env.ProjectDir, broken, blue, green) })
	var sql enginetest.SQLServer
	var sqlAddr string
	timed("cloud sql", func() { sql, sqlAddr = startCloudSQL(ctx, t) })

	nodes, err := enginetest.DataPlaneNodes(inv, 1)
	require.NoError(t, err)
	var d *enginetest.DataPlane
	timed("data plane", func() {
		d, err = enginetest.StartDataPlane(env.ProjectDir, nodes, enginetest.DataPlaneOptions{Images: images, ExtraAddrs: []string{cloudSQLIP}})
		require.NoError(t, err)
	})
	t.Cleanup(func() {
		if t.Failed() {
			dumpDataPlane(t, d)
		}
		assert.NoError(t, d.Stop())
	})
	require.NoError(t, d.Expose(ctx, net.JoinHostPort(cloudSQLIP, "5432"), sqlAddr))
	require.NoError(t, applyVolumes(ctx, d, inv))

	env.AttachRealKubernetes(t, d.KubeCluster, providerBin)
	env.Providers.Cloud.SetSQLServer(sql)
	s := env.Stack(ctx, t, stack, stacks.Program)
	setConfig(ctx, t, s, "runtime.image", blue)
	timed("up", func() {
		up, err := s.Up(ctx)
		require.NoError(t, err, "up: %s", tail(err))
		assert.Equal(t, "succeeded", up.Summary.Result)
	})
	assertServerReady(ctx, t, d.KubeCluster, env, stack, time.Minute)
	changed, err := d.HostSysctlChanges()
	require.NoError(t, err)
	require.Empty(t, changed, "the kubelets changed the host's kernel settings")

	prefix := cfg.NamePrefix()
	public := publicService(t, env, stack, prefix)
	require.Equal(t, omsruntime.Blue, selectorColor(ctx, t, d.KubeCluster, public))
	e := newDrillEnv(ctx, t, d, prefix, public.namespace)
	drill := func(name string, clients int, f func(t *testing.T, load *orderLoad)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			load := startOrderLoad(e.api, e.apiKey, clients)
			time.Sleep(3 * time.Second)
			f(t, load)
			time.Sleep(3 * time.Second)
			ids, failures, phases := load.Stop()
			t.Logf("%s: %d orders acknowledged, %d failed, requests by phase %v, %.1fs", name, len(ids), len(failures), phases, time.Since(start).Seconds())
			if !assert.Empty(t, failures, "every order request under the drill answers 201") {
				t.Logf("first failures: %v", failures[:min(len(failures), 10)])
			}
			e.checkOrders(ctx, t, ids)
		})
	}

	drill("release switch", 4, func(t *testing.T, load *orderLoad) {
		load.Phase("failing switch")
		setConfig(ctx, t, s, "runtime.activeColor", omsruntime.Green)
		setConfig(ctx, t, s, "runtime.colorImages.green", broken)
		timed("failing switch", func() {
			_, err := s.Up(ctx)
			require.Error(t, err, "up must fail when the green release's smoke test fails")
			assert.Contains(t, err.Error(), omsruntime.SmokeJobName(prefix, omsruntime.Green, broken), "the smoke Job fails the update")
		})
		assert.Equal(t, omsruntime.Blue, selectorColor(ctx, t, d.KubeCluster, public), "a failing smoke test leaves the public Service on blue")
		load.Phase("switch")
		setConfig(ctx, t, s, "runtime.colorImages.green", green)
		timed("switch", func() {
			up, err := s.Up(ctx)
			require.NoError(t, err, "switch to green: %s", tail(err))
			assert.Equal(t, "succeeded", up.Summary.Result)
		})
		assert.Equal(t, omsruntime.Green, selectorColor(ctx, t, d.KubeCluster, public), "the public Service selects green")
		load.Phase("after switch")
	})

	drill("rabbitmq pod deleted", 4, func(t *testing.T, load *orderLoad) {
		load.Phase("pod deleted")
		pod := prefix + "-rabbitmq-1"
		start := time.Now()
		_, err := d.Kubectl(ctx, nil, "-n", public.namespace, "delete", "pod", pod, "--timeout=6m")
		require.NoError(t, err)
		_, err = d.Kubectl(ctx, nil, "-n", public.namespace, "rollout", "status", "statefulset/"+prefix+"-rabbitmq", "--timeout=5m")
		require.NoError(t, err)
		t.Logf("rabbitmq: %s deleted and back ready in %.1fs", pod, time.Since(start).Seconds())
		load.Phase("after")
	})

	drill("web node drained", 4, func(t *testing.T, load *orderLoad) {
		load.Phase("drain")
		node := nodeOfColor(ctx, t, d, public.namespace, prefix, omsruntime.Green)
		start := time.Now()
		_, err := d.Kubectl(ctx, nil, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m")
		require.NoError(t, err, "drain %s (the PodDisruptionBudgets must let it finish)", node)
		t.Logf("drain of %s took %.1fs", node, time.Since(start).Seconds())
		load.Phase("after")
		_, err = d.Kubectl(ctx, nil, "uncordon", node)
		require.NoError(t, err)
	})

	drill("redis master node cut", 4, func(t *testing.T, load *orderLoad) {
		master, node := redisMaster(ctx, t, d, e, prefix)
		load.Phase("cut")
		start := time.Now()
		require.NoError(t, d.CutNode(ctx, node))
		var next string
		for next == "" {
			seen, _ := redisMastersSeen(ctx, d, e, prefix)
			for n, m := range seen {
				if n != node && m != master {
					next = m
				}
			}
			require.Less(t, time.Since(start), 2*time.Minute, "no failover away from %s within 2 minutes", master)
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("redis: master %s on %s cut; sentinels promoted %s after %.1fs", master, node, next, time.Since(start).Seconds())
		time.Sleep(5 * time.Second)
		load.Phase("restored")
		require.NoError(t, d.RestoreNode(ctx, node))
		_, err := d.Kubectl(ctx, nil, "-n", public.namespace, "rollout", "status", "statefulset/"+prefix+"-redis", "--timeout=5m")
		require.NoError(t, err)
		t.Logf("redis: %s back, every replica ready %.1fs after the cut", node, time.Since(start).Seconds())
		// Back on the network, the old master still lists its former replicas (their connections never saw a reset)
		// and the sentinel beside it still names it, until the others' newer configuration reaches them. The
		// sentinels that saw the failover never go back to the old master.
		var learned time.Duration
		for {
			seen, err := redisMastersSeen(ctx, d, e, prefix)
			require.NoError(t, err)
			for n, m := range seen {
				if n != node {
					require.Equal(t, next, m, "the sentinel on %s went back to another master once %s was back", n, master)
				}
			}
			if learned == 0 && seen[node] == next {
				learned = time.Since(start)
			}
			out, err := d.Kubectl(ctx, nil, "-n", public.namespace, "exec", master, "-c", "redis", "--", "redis-cli", "--no-auth-warning",
				"-a", e.secrets["OMS_REDIS_PASSWORD"], "INFO", "replication")
			require.NoError(t, err)
			if learned != 0 && strings.Contains(out, "role:slave") && strings.Contains(out, "master_link_status:up") {
				break
			}
			require.Less(t, time.Since(start), 2*time.Minute, "the old master %s has not rejoined as a replica (its sentinel names %s): %s", master, seen[node], out)
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("redis: the sentinel beside the old master names %s %.1fs after the cut", next, learned.Seconds())
		t.Logf("redis: the old master %s replicates from %s %.1fs after the cut", master, next, time.Since(start).Seconds())
	})
}

// buildImages builds the data plane's images (testtools/images-build.sh) with the runtime tagged as each of tags, and
// as broken a release that fails its smoke test.
func buildImages(t *testing.T, projectDir, broken string, tags ...string) string {
	t.Helper()
	dir := filepath.Join(enginetest.CacheDir(), "images")
	args := []string{filepath.Join(projectDir, "testtools", "images-build.sh"), dir, "--oms-broken-tag", broken}
	for _, tag := range tags {
		args = append(args, "--oms-tag", tag)
	}
	out, err := exec.Command("bash", args...).CombinedOutput()
	require.NoError(t, err, "testtools/images-build.sh:\n%s", out)
	return dir
}

// startCloudSQL starts a PostgreSQL that refuses connections without TLS, as Cloud SQL (ENCRYPTED_ONLY), with a CA
// of its own, and returns the stand-in that creates on it what the Cloud SQL API creates, and its host address.
func startCloudSQL(ctx context.Context, t *testing.T) (enginetest.SQLServer, string) {
	t.Helper()
	caPEM, certPEM, keyPEM := serverCA(t)
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: t.TempDir(), TLS: &localenv.PostgresTLS{CertPEM: certPEM, KeyPEM: keyPEM},
		Settings: map[string]string{"fsync": "off", "max_connections": "300"}})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pg.Stop()) })
	admin := pg.PrimaryURL("postgres")
	ddl := func(format string, idents ...any) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var stmt string
		if err := conn.QueryRow(ctx, "SELECT format($1"+placeholders(len(idents))+")", append([]any{format}, idents...)...).Scan(&stmt); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	require.NoError(t, ddl("CREATE ROLE cloudsqlsuperuser NOLOGIN CREATEDB CREATEROLE"))
	return enginetest.SQLServer{
		PrivateIP: cloudSQLIP,
		CACertPEM: string(caPEM),
		CreateUser: func(name, password string) error {
			// A user created through the API has CREATEROLE and CREATEDB itself (attributes are not inherited from
			// cloudsqlsuperuser): https://cloud.google.com/sql/docs/postgres/users#other_postgresql_users
			if err := ddl("CREATE ROLE %I LOGIN CREATEROLE CREATEDB IN ROLE cloudsqlsuperuser", name); err != nil && !strings.Contains(err.Error(), "already exists") {
				return err
			}
			return ddl("ALTER ROLE %I PASSWORD %L", name, password)
		},
		CreateDatabase: func(name string) error {
			err := ddl("CREATE DATABASE %I OWNER cloudsqlsuperuser", name)
			if err != nil && strings.Contains(err.Error(), "already exists") {
				return nil
			}
			return err
		},
	}, "127.0.0.1:" + strconv.Itoa(pg.PrimaryPort())
}

func placeholders(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ", $%d::text", i+2)
	}
	return b.String()
}

// serverCA is a CA and a server certificate it signed (the Cloud SQL server CA the runtime verifies against).
func serverCA(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Cloud SQL stand-in server CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "omscloud-sandbox-us:sql"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP(cloudSQLIP)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// applyVolumes creates the local volumes the stack's claims bind to, each a directory of the cluster's own.
func applyVolumes(ctx context.Context, d *enginetest.DataPlane, inv *inventory.Inventory) error {
	objs, err := enginetest.Nodes(inv, 1)
	if err != nil {
		return err
	}
	root := filepath.Join(d.Dir, "volumes")
	vols, err := enginetest.Volumes(inv, objs, root)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v["kind"] == "PersistentVolume" {
			if err := os.MkdirAll(filepath.Join(root, v["metadata"].(map[string]any)["name"].(string)), 0o755); err != nil {
				return err
			}
		}
	}
	return d.Apply(ctx, vols...)
}

// dumpDataPlane logs what a failed run needs: pods, events and the logs of every container that is not ready.
func dumpDataPlane(t *testing.T, d *enginetest.DataPlane) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by", ".lastTimestamp"},
	} {
		out, err := d.Kubectl(ctx, nil, args...)
		t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, errOrEmpty(err))
	}
	pods, err := d.Get(ctx, "pods", "-A")
	if err != nil {
		return
	}
	items, _ := pods["items"].([]any)
	for _, p := range items {
		m, _ := p.(map[string]any)
		meta, _ := m["metadata"].(map[string]any)
		status, _ := m["status"].(map[string]any)
		cs, _ := status["containerStatuses"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if cm["ready"] == true {
				continue
			}
			for _, prev := range []string{"false", "true"} {
				out, _ := d.Kubectl(ctx, nil, "logs", "-n", fmt.Sprint(meta["namespace"]), fmt.Sprint(meta["name"]), "-c", fmt.Sprint(cm["name"]),
					"--tail", "40", "--previous="+prev)
				t.Logf("logs %s/%s %s (previous=%s):\n%s", meta["namespace"], meta["name"], cm["name"], prev, out)
			}
		}
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
