package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// skip skips the test, except in CI (CI=true), where a missing input is a failure.
func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// dynamicBinary is a dynamically linked host program, or the test is skipped.
func dynamicBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ldd"); err != nil {
		skip(t, "no ldd on this machine")
	}
	for _, name := range []string{"ls", "cat", "sh"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			continue
		}
		if _, dyn, err := elfInfo(p); err == nil && dyn {
			return p
		}
	}
	skip(t, "no dynamically linked ls, cat or sh")
	return ""
}

func testImage(bin string) Image {
	return Image{
		Name: "test",
		Refs: []string{"omscloud.test/test:1"},
		Layers: []Layer{
			{Name: "base", Items: []Item{Link("/lib", "usr/lib"), Link("/lib64", "usr/lib64"), Dir("/tmp", 0o1777, 0, 0)}},
			{Name: "app", Items: []Item{Host(bin), File("/etc/passwd", 0o644, "root:x:0:0::/:/bin/sh\n"), Dir("/data", 0o755, 999, 999)}},
		},
		Config: Config{User: "999:999", Entrypoint: []string{bin}},
	}
}

func buildOnce(t *testing.T, img Image) []byte {
	t.Helper()
	dir := t.TempDir()
	layers, err := plan(img, newLDDCache())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(filepath.Join(dir, "test.tar"), img, layers); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "test.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	return b
}

// Two builds of the same inputs are the same bytes, so the same layer and image digests.
func TestArchiveIsReproducible(t *testing.T) {
	img := testImage(dynamicBinary(t))
	a := buildOnce(t, img)
	b := buildOnce(t, img)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ: %d and %d bytes", len(a), len(b))
	}
	members := readTar(t, a)
	var man []manifestEntry
	if err := json.Unmarshal(members["manifest.json"], &man); err != nil || len(man) != 1 {
		t.Fatalf("manifest.json: %v %s", err, members["manifest.json"])
	}
	if got := man[0].RepoTags; !slices.Equal(got, img.Refs) {
		t.Errorf("RepoTags = %v, want %v", got, img.Refs)
	}
	var cfg imageConfig
	if err := json.Unmarshal(members[man[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != 2 || len(man[0].Layers) != 2 {
		t.Fatalf("want 2 layers, got diff_ids %v, layers %v", cfg.RootFS.DiffIDs, man[0].Layers)
	}
	for i, l := range man[0].Layers {
		// A layer's file name is its diff ID: the sha256 of the uncompressed tar.
		if want := strings.TrimPrefix(cfg.RootFS.DiffIDs[i], "sha256:") + "/layer.tar"; l != want {
			t.Errorf("layer %d is %s, diff_id says %s", i, l, want)
		}
		if _, ok := members[l]; !ok {
			t.Errorf("layer %s missing from the archive", l)
		}
	}
	if cfg.Config.User != "999:999" {
		t.Errorf("User = %q", cfg.Config.User)
	}
}

// The layer holds the binary, every library ldd lists for it (the real file behind each soname
// link) and the loader, at their /usr paths, with fixed mtimes and numeric owners.
func TestLayerHasTheLDDLibraries(t *testing.T) {
	bin := dynamicBinary(t)
	img := testImage(bin)
	members := readTar(t, buildOnce(t, img))
	var man []manifestEntry
	if err := json.Unmarshal(members["manifest.json"], &man); err != nil {
		t.Fatal(err)
	}
	app := readTarHeaders(t, members[man[0].Layers[1]])

	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)(/\S+) \(0x`)
	libs := re.FindAllStringSubmatch(string(out), -1)
	if len(libs) < 2 {
		t.Fatalf("ldd %s lists %d libraries: %s", bin, len(libs), out)
	}
	want := []string{bin}
	for _, m := range libs {
		want = append(want, m[1])
	}
	for _, p := range want {
		in, err := hostPath(p)
		if err != nil {
			t.Fatal(err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range slices.Compact([]string{in, real}) {
			if _, ok := app[strings.TrimPrefix(q, "/")]; !ok {
				t.Errorf("%s (for %s) missing from the layer", q, p)
			}
		}
	}
	for name, h := range app {
		if !h.ModTime.Equal(epoch) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v, owner names %q:%q", name, h.ModTime, h.Uname, h.Gname)
		}
	}
	if h := app["data/"]; h == nil || h.Uid != 999 || h.Gid != 999 {
		t.Errorf("data/ = %+v, want owned by 999:999", h)
	}
	if h := app["lib/"]; h != nil {
		t.Errorf("the app layer has lib/ as a directory over the base layer's link")
	}
}

// Every image the sandbox manifests name, except the oms image (by digest there), is built under
// that name, and the spec resolves on this machine.
func TestImagesMatchTheManifests(t *testing.T) {
	yaml, err := os.ReadFile("../../../../stacks/testdata/sandbox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{OMSRefs: []string{"omscloud.test/oms:test"}, PauseRefs: []string{"registry.k8s.io/pause:3.10"}}
	refs := map[string]bool{}
	for _, img := range Images(o) {
		for _, r := range img.Refs {
			refs[r] = true
		}
	}
	if !refs["omscloud.test/oms:test"] {
		t.Error("-oms-tag does not name the oms image")
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+image: (\S+)$`).FindAllStringSubmatch(string(yaml), -1) {
		ref := m[1]
		if strings.Contains(ref, "@sha256:") {
			continue // the release image, replaced by -oms-tag in a local stack
		}
		full := ref
		if strings.Count(strings.Split(ref, ":")[0], "/") == 0 {
			full = "docker.io/library/" + ref
		} else if !strings.Contains(strings.Split(ref, "/")[0], ".") {
			full = "docker.io/" + ref
		}
		if !refs[full] {
			t.Errorf("the manifests run %s (%s); no image here has that name", ref, full)
		}
	}

	for _, p := range []string{"/usr/bin/busybox", "/usr/bin/redis-server", "/usr/lib/rabbitmq", "/usr/bin/curl", "/etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(p); err != nil {
			skip(t, "spec not resolvable here: %v (scripts/install-services.sh, apt-get install busybox-static)", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o = Options{OMSBin: self, OMSRefs: []string{"omscloud.test/oms:test"}, PauseBin: self, RedisExporterBin: self,
		BusyboxBin: "/usr/bin/busybox", CACertificatesFile: "/etc/ssl/certs/ca-certificates.crt", PauseRefs: o.PauseRefs}
	ldd := newLDDCache()
	for _, img := range Images(o) {
		layers, err := plan(img, ldd)
		if err != nil {
			t.Errorf("%s: %v", img.Name, err)
			continue
		}
		all := map[string]*entry{}
		for _, l := range layers {
			for _, e := range l.entries {
				all[e.path] = e
			}
		}
		for _, p := range needs[img.Name] {
			if all[p] == nil {
				t.Errorf("%s: no %s", img.Name, p)
			}
		}
	}
}

// needs are the paths the manifests' commands, probes and scripts run in each image.
var needs = map[string][]string{
	"redis":    {"/usr/bin/redis-server", "/usr/bin/redis-sentinel", "/usr/bin/redis-cli", "/usr/bin/getent", "/usr/bin/sh", "/usr/bin/timeout", "/usr/bin/awk", "/etc/passwd", "/usr/lib64/ld-linux-x86-64.so.2"},
	"rabbitmq": {"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-diagnostics", "/usr/lib/rabbitmq/bin/rabbitmq-upgrade", "/usr/bin/erl", "/usr/bin/sh", "/usr/bin/cp", "/usr/bin/chmod", "/usr/local/bin/docker-entrypoint.sh"},
	"curl":     {"/usr/bin/curl", "/usr/bin/sh", "/usr/bin/sleep", "/etc/ssl/certs/ca-certificates.crt"},
	"oms":      {"/usr/local/bin/oms", "/etc/ssl/certs/ca-certificates.crt", "/etc/passwd", "/tmp"},
	"pause":    {"/pause"},
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

func readTarHeaders(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name <= prev {
			t.Errorf("entries not sorted: %s after %s", h.Name, prev)
		}
		prev = h.Name
		out[h.Name] = h
	}
}
