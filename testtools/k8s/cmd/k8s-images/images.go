package main

import (
	"archive/tar"
	"fmt"
	"os/exec"
	"strings"
)

// The images the sandbox stack's manifests name (stacks/testdata/sandbox.yaml), built from this
// machine's Debian packages and Go builds. Users, groups and uids are the ones the pods run as.

// Image is one docker-archive tarball: OUT/<Name>.tar.
type Image struct {
	Name   string
	Refs   []string
	Layers []Layer
	Config Config
	// Binary names the flag whose file the image needs; without it the image is skipped.
	Binary string
}

// Layer is one layer's content; identical layers of different images have identical digests.
type Layer struct {
	Name  string
	Items []Item
}

// Config is the part of the image config a container runtime reads.
type Config struct {
	User       string
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
}

// Item adds entries to a layer.
type Item func(b *layerBuilder) error

// Host copies host files to the same paths, with their symlinks, libraries and loader.
func Host(paths ...string) Item {
	return func(b *layerBuilder) error {
		for _, p := range paths {
			if err := b.addHost(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// HostAs copies one host file (a build output) to dst.
func HostAs(src, dst string) Item {
	return func(b *layerBuilder) error { return b.addHostAs(src, dst) }
}

// Tree copies a host directory recursively.
func Tree(dir string) Item { return func(b *layerBuilder) error { return b.addTree(dir) } }

// File is a literal file owned by root.
func File(p string, mode int64, content string) Item {
	return func(b *layerBuilder) error {
		return b.put(&entry{path: p, typ: tar.TypeReg, mode: mode, data: []byte(content), size: int64(len(content))})
	}
}

// Dir is a directory with an owner: a home or data directory the image's user writes to.
func Dir(p string, mode int64, uid, gid int) Item {
	return func(b *layerBuilder) error {
		return b.put(&entry{path: p, typ: tar.TypeDir, mode: mode, uid: uid, gid: gid})
	}
}

// Link is a symlink.
func Link(p, target string) Item {
	return func(b *layerBuilder) error {
		return b.put(&entry{path: p, typ: tar.TypeSymlink, mode: 0o777, link: target})
	}
}

// Busybox copies the static busybox and links every applet it lists to it (weakly: a real binary at
// the same path wins).
func Busybox(bin string) Item {
	return func(b *layerBuilder) error {
		if err := b.addHost(bin); err != nil {
			return fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
		}
		out, err := exec.Command(bin, "--list-full").Output()
		if err != nil {
			return fmt.Errorf("%s --list-full: %w", bin, err)
		}
		for _, a := range strings.Fields(string(out)) {
			// Merged /usr: /bin and /sbin are links to usr/bin and usr/sbin in these images.
			switch {
			case strings.HasPrefix(a, "bin/"), strings.HasPrefix(a, "sbin/"):
				a = "usr/" + a
			case strings.HasPrefix(a, "usr/"):
			default:
				continue
			}
			if err := b.put(&entry{path: a, typ: tar.TypeSymlink, mode: 0o777, link: bin, weak: true}); err != nil {
				return err
			}
		}
		return nil
	}
}

// Options are the inputs that are not on this machine's fixed paths.
type Options struct {
	OMSBin  string
	OMSRefs []string
	// OMSBrokenRefs name a release that starts and turns ready but fails the smoke test (omsBrokenEntrypoint).
	OMSBrokenRefs      []string
	PauseBin           string
	RedisExporterBin   string
	BusyboxBin         string
	PauseRefs          []string
	CACertificatesFile string
}

const stdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// passwd renders /etc/passwd and /etc/group: one user per line "name:uid:gid:home:shell", each with
// a group of its own gid.
func passwd(users ...string) Item {
	return func(b *layerBuilder) error {
		pw, gr := "", ""
		for _, u := range users {
			f := strings.Split(u, ":")
			pw += fmt.Sprintf("%s:x:%s:%s:%s:%s:%s\n", f[0], f[1], f[2], f[0], f[3], f[4])
			gr += fmt.Sprintf("%s:x:%s:\n", groupName(f[0]), f[2])
		}
		if err := File("/etc/passwd", 0o644, pw)(b); err != nil {
			return err
		}
		return File("/etc/group", 0o644, gr)(b)
	}
}

func groupName(user string) string {
	if user == "nobody" {
		return "nogroup"
	}
	return user
}

// Images is the spec: one entry per image, the reason next to each file that is not obvious.
func Images(o Options) []Image {
	// root is what every image with more than one binary has: merged-/usr links (ldd's paths under
	// /lib and the loader's /lib64 resolve through them, as on the host), a world-writable /tmp,
	// glibc's (and Go's) name service order, and the CA bundle (libcurl, OpenSSL and Go read this path).
	root := []Item{
		Link("/bin", "usr/bin"), Link("/sbin", "usr/sbin"), Link("/lib", "usr/lib"), Link("/lib64", "usr/lib64"),
		Dir("/tmp", 0o1777, 0, 0),
		File("/etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"),
		HostAs(o.CACertificatesFile, "/etc/ssl/certs/ca-certificates.crt"),
	}
	base := Layer{Name: "base", Items: root}
	// The manifests' scripts (Redis init/probe/prestop, the RabbitMQ cookie init container, the smoke
	// Job) are POSIX sh with awk, sed, tr, head, timeout, sleep, cp, chmod: busybox has them all but getent.
	shell := Layer{Name: "busybox", Items: append(append([]Item{}, root...), Busybox(o.BusyboxBin))}

	return []Image{
		{
			Name: "pause",
			// containerd 1.6's default sandbox_image is pause:3.6; the kubelet's and containerd 2's is 3.10.
			Refs:   o.PauseRefs,
			Binary: "pause-bin",
			Layers: []Layer{{Name: "pause", Items: []Item{HostAs(o.PauseBin, "/pause")}}},
			Config: Config{User: "65535:65535", Entrypoint: []string{"/pause"}},
		},
		{
			Name: "redis",
			Refs: []string{"docker.io/library/redis:7.2.5"},
			Layers: []Layer{shell, {Name: "redis", Items: []Item{
				passwd("root:0:0:/root:/bin/sh", "redis:999:999:/data:/bin/sh", "nobody:65534:65534:/nonexistent:/usr/sbin/nologin"),
				// redis-server and redis-sentinel are links to one binary that picks its mode by name.
				Host("/usr/bin/redis-server", "/usr/bin/redis-sentinel", "/usr/bin/redis-cli"),
				// init.sh waits until the master's name resolves with `getent hosts`; busybox has no getent.
				Host("/usr/bin/getent"),
				Dir("/data", 0o755, 999, 999),
			}}},
			Config: Config{User: "999:999", Env: []string{stdPath}, Cmd: []string{"redis-server"}, WorkingDir: "/data"},
		},
		{
			Name: "rabbitmq",
			// Debian's RabbitMQ 3.10.8 on Erlang 25 under the 3.13.7 name (no newer build on this machine).
			Refs: []string{"docker.io/library/rabbitmq:3.13.7-management"},
			Layers: []Layer{shell, {Name: "rabbitmq", Items: []Item{
				passwd("root:0:0:/root:/bin/sh", "rabbitmq:999:999:/var/lib/rabbitmq:/usr/sbin/nologin", "nobody:65534:65534:/nonexistent:/usr/sbin/nologin"),
				Tree("/usr/lib/erlang"),
				Host("/usr/bin/erl", "/usr/bin/escript", "/usr/bin/epmd"),
				// /usr/lib/rabbitmq/bin holds the real scripts (links into rabbitmq_server-3.10.8/sbin); PATH
				// puts it first so Debian's /usr/sbin wrappers, which log to files and su to rabbitmq, are skipped.
				Tree("/usr/lib/rabbitmq"),
				// The StatefulSet relies on the image's default command (the official image's entrypoint +
				// rabbitmq-server): its env sets RABBITMQ_NODENAME, RABBITMQ_USE_LONGNAME and HOME, and an init
				// container copies the Erlang cookie to $HOME/.erlang.cookie, where Erlang reads it.
				File("/usr/local/bin/docker-entrypoint.sh", 0o755, rabbitmqEntrypoint),
				// The official image's defaults; the StatefulSet mounts its ConfigMap over /etc/rabbitmq.
				Dir("/etc/rabbitmq", 0o777, 999, 999),
				Dir("/etc/rabbitmq/conf.d", 0o777, 999, 999),
				File("/etc/rabbitmq/conf.d/10-defaults.conf", 0o644, "loopback_users.guest = false\nlog.console = true\n"),
				File("/etc/rabbitmq/enabled_plugins", 0o644, "[rabbitmq_management,rabbitmq_prometheus].\n"),
				Dir("/var/lib/rabbitmq", 0o777, 999, 999),
				Dir("/var/log/rabbitmq", 0o777, 999, 999),
			}}},
			Config: Config{
				User: "999:999",
				Env: []string{
					"PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					"HOME=/var/lib/rabbitmq",
					"RABBITMQ_LOGS=-", // console, as the official image
					"LANG=C.UTF-8", "LANGUAGE=C.UTF-8", "LC_ALL=C.UTF-8",
				},
				Entrypoint: []string{"docker-entrypoint.sh"},
				Cmd:        []string{"rabbitmq-server"},
				WorkingDir: "/var/lib/rabbitmq",
			},
		},
		{
			Name: "curl",
			Refs: []string{"docker.io/curlimages/curl:8.11.1"},
			Layers: []Layer{shell, {Name: "curl", Items: []Item{
				// curl_user is the official image's user; the smoke Job runs as 65532.
				passwd("root:0:0:/root:/bin/sh", "curl_user:100:101:/home/curl_user:/bin/sh", "nonroot:65532:65532:/home/nonroot:/bin/sh"),
				Host("/usr/bin/curl"),
				File("/entrypoint.sh", 0o755, curlEntrypoint),
				Dir("/home/curl_user", 0o755, 100, 101),
			}}},
			Config: Config{User: "100:101", Env: []string{stdPath}, Entrypoint: []string{"/entrypoint.sh"}, Cmd: []string{"curl"}},
		},
		{
			Name:   "redis-exporter",
			Refs:   []string{"docker.io/oliver006/redis_exporter:v1.62.0"},
			Binary: "redis-exporter-bin",
			Layers: []Layer{base, {Name: "redis-exporter", Items: []Item{
				passwd("root:0:0:/root:/sbin/nologin", "exporter:59000:59000:/:/sbin/nologin"),
				HostAs(o.RedisExporterBin, "/redis_exporter"),
			}}},
			Config: Config{User: "59000:59000", Env: []string{stdPath}, Entrypoint: []string{"/redis_exporter"}},
		},
		{
			Name:   "oms",
			Refs:   o.OMSRefs,
			Binary: "oms-bin",
			// Like the distroless nonroot base the release image uses: the pods only run `oms <args>`.
			Layers: []Layer{base, {Name: "oms", Items: []Item{
				passwd("root:0:0:/root:/sbin/nologin", "nonroot:65532:65532:/home/nonroot:/sbin/nologin", "nobody:65534:65534:/nonexistent:/sbin/nologin"),
				HostAs(o.OMSBin, "/usr/local/bin/oms"),
				Dir("/home/nonroot", 0o700, 65532, 65532),
			}}},
			Config: Config{
				User:       "65532:65532",
				Env:        []string{stdPath, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
				Entrypoint: []string{"/usr/local/bin/oms"},
				WorkingDir: "/home/nonroot",
			},
		},
		{
			Name:   "oms-broken",
			Refs:   o.OMSBrokenRefs,
			Binary: "oms-bin",
			// The same runtime behind a shell that replaces the admin token: a release that is ready (database and
			// Redis answer) but refuses the real admin token, which the smoke test catches (its 400 check gets 403).
			Layers: []Layer{shell, {Name: "oms-broken", Items: []Item{
				passwd("root:0:0:/root:/sbin/nologin", "nonroot:65532:65532:/home/nonroot:/sbin/nologin"),
				HostAs(o.OMSBin, "/usr/local/bin/oms"),
				Dir("/home/nonroot", 0o700, 65532, 65532),
			}}},
			Config: Config{
				User:       "65532:65532",
				Env:        []string{stdPath, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
				Entrypoint: []string{"/bin/sh", "-c", `OMS_ADMIN_TOKEN=release-bug exec /usr/local/bin/oms "$@"`, "oms"},
				WorkingDir: "/home/nonroot",
			},
		},
	}
}

// rabbitmqEntrypoint is the part of the official image's docker-entrypoint.sh these pods use:
// flags go to rabbitmq-server. rabbitmq-server stays in the foreground (it traps SIGTERM and stops
// the node, so as PID 1 it still stops on the kubelet's signal).
const rabbitmqEntrypoint = `#!/bin/sh
set -e
case "${1:-}" in
-*) set -- rabbitmq-server "$@" ;;
esac
exec "$@"
`

// curlEntrypoint is the official curl image's: arguments that are not a command go to curl.
const curlEntrypoint = `#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ]; then
	set -- curl "$@"
fi
exec "$@"
`
