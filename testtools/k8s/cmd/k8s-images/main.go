// Command k8s-images writes the container images of the local Kubernetes data plane as
// docker-archive tarballs, built from binaries on this machine (Debian packages, the oms build,
// the pause program, redis_exporter), under the names the sandbox stack's manifests use, so that
// nothing is ever pulled: `ctr -n k8s.io images import OUT/<name>.tar`.
//
// Every layer is an uncompressed tar with entries sorted by path, mtime 0 and uid/gid only (no
// names), so the same inputs give the same digests. An image whose inputs (host files by content,
// spec, this program) did not change since the last run is left as it is.
//
//	k8s-images -out DIR -oms-bin BIN [-oms-tag omscloud.test/oms:local,...] -pause-bin BIN \
//	           [-redis-exporter-bin BIN] [-only redis,curl] [-force] [-list]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// formatVersion is part of every stamp: bump it when the archive layout changes.
const formatVersion = "k8s-images/1"

func main() {
	var o Options
	out := flag.String("out", "", "directory for the tarballs (created if missing)")
	flag.StringVar(&o.OMSBin, "oms-bin", "", "the oms binary (CGO off); without it the oms image is skipped")
	omsRefs := flag.String("oms-tag", "omscloud.test/oms:local", "comma-separated references of the oms image (one per color a test stages)")
	omsBroken := flag.String("oms-broken-tag", "", "comma-separated references of a release that fails the smoke test (empty: not built)")
	flag.StringVar(&o.PauseBin, "pause-bin", "", "the static pause program; without it the pause image is skipped")
	pauseRefs := flag.String("pause-refs", "registry.k8s.io/pause:3.10,registry.k8s.io/pause:3.6", "comma-separated references of the pause image (containerd's sandbox_image must be one)")
	flag.StringVar(&o.RedisExporterBin, "redis-exporter-bin", "", "the redis_exporter binary; without it that image is skipped")
	flag.StringVar(&o.BusyboxBin, "busybox", "/usr/bin/busybox", "static busybox (Debian busybox-static)")
	flag.StringVar(&o.CACertificatesFile, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt")
	only := flag.String("only", "", "comma-separated image names to build (default all)")
	force := flag.Bool("force", false, "rebuild even when the stamp matches")
	list := flag.Bool("list", false, "print each image's name and references and exit")
	flag.Parse()
	o.PauseRefs = splitList(*pauseRefs)
	o.OMSRefs = splitList(*omsRefs)
	o.OMSBrokenRefs = splitList(*omsBroken)

	imgs := Images(o)
	if *list {
		for _, img := range imgs {
			fmt.Printf("%s %s\n", img.Name, strings.Join(img.Refs, " "))
		}
		return
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "k8s-images: -out is required")
		os.Exit(2)
	}
	if err := run(*out, imgs, o, splitList(*only), *force); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-images:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(out string, imgs []Image, o Options, only []string, force bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	salt, err := fileHash(self)
	if err != nil {
		return err
	}
	salt = formatVersion + " " + salt
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	inputs := map[string]string{"oms-bin": o.OMSBin, "pause-bin": o.PauseBin, "redis-exporter-bin": o.RedisExporterBin}
	ldd := newLDDCache()
	for _, img := range imgs {
		if len(want) > 0 && !want[img.Name] {
			continue
		}
		if img.Binary != "" && inputs[img.Binary] == "" {
			fmt.Printf("%-15s skipped: no -%s\n", img.Name, img.Binary)
			continue
		}
		if len(img.Refs) == 0 {
			fmt.Printf("%-15s skipped: no reference asked for\n", img.Name)
			continue
		}
		if err := build(out, img, ldd, salt, force); err != nil {
			return fmt.Errorf("%s: %w", img.Name, err)
		}
	}
	return nil
}

func build(out string, img Image, ldd *lddCache, salt string, force bool) error {
	start := time.Now()
	layers, err := plan(img, ldd)
	if err != nil {
		return err
	}
	st, err := imageStamp(img, layers, salt)
	if err != nil {
		return err
	}
	tarball := filepath.Join(out, img.Name+".tar")
	stampFile := tarball + ".stamp"
	if !force {
		if old, err := os.ReadFile(stampFile); err == nil && strings.TrimSpace(string(old)) == st {
			if fi, err := os.Stat(tarball); err == nil {
				fmt.Printf("%-15s unchanged %6.1f MB  %s  (%.1fs)\n", img.Name, mb(fi.Size()), strings.Join(img.Refs, " "), time.Since(start).Seconds())
				return nil
			}
		}
	}
	os.Remove(stampFile) // a stamp never outlives the tarball it describes
	if err := writeArchive(tarball, img, layers); err != nil {
		return err
	}
	if err := os.WriteFile(stampFile, []byte(st+"\n"), 0o644); err != nil {
		return err
	}
	fi, err := os.Stat(tarball)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range layers {
		n += len(l.entries)
	}
	fmt.Printf("%-15s built     %6.1f MB  %s  (%.1fs, %d layers, %d entries, sha256:%s)\n", img.Name, mb(fi.Size()),
		strings.Join(img.Refs, " "), time.Since(start).Seconds(), len(layers), n, shortHash(tarball))
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// shortHash is the tarball's sha256 prefix, to compare two builds at a glance.
func shortHash(p string) string {
	h, err := fileHash(p)
	if err != nil {
		return "?"
	}
	return h[:12]
}
