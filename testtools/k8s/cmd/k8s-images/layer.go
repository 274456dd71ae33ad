package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// epoch is every entry's mtime: fixed so that a layer's digest depends on its content only.
var epoch = time.Unix(0, 0).UTC()

// entry is one file, directory or symlink of a layer, at an absolute, clean path of the image.
type entry struct {
	path     string
	typ      byte // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	mode     int64
	uid, gid int
	link     string // symlink target
	src      string // host file to copy (regular files)
	data     []byte // literal content (regular files without src)
	size     int64
	weak     bool // a busybox applet link: any other entry at its path wins
}

func (e *entry) same(o *entry) bool {
	return e.typ == o.typ && e.mode == o.mode && e.uid == o.uid && e.gid == o.gid && e.link == o.link &&
		e.src == o.src && bytes.Equal(e.data, o.data) && e.size == o.size
}

// layerBuilder collects a layer's entries from host paths, trees and literals.
type layerBuilder struct {
	entries map[string]*entry
	below   func(string) *entry // the same path in the image's lower layers, nil if none
	ldd     *lddCache
	visited map[string]bool
}

func newLayerBuilder(ldd *lddCache, below func(string) *entry) *layerBuilder {
	if below == nil {
		below = func(string) *entry { return nil }
	}
	return &layerBuilder{entries: map[string]*entry{}, below: below, ldd: ldd, visited: map[string]bool{}}
}

func (b *layerBuilder) put(e *entry) error {
	e.path = path.Clean("/" + e.path)
	if l := b.below(e.path); l != nil && l.same(e) {
		return nil // already in a lower layer (a library two binaries share, say)
	}
	if old, ok := b.entries[e.path]; ok {
		switch {
		case old.same(e):
			return nil
		case e.weak:
			return nil
		case old.weak:
		case old.typ == tar.TypeDir && e.typ == tar.TypeDir:
			return fmt.Errorf("%s: directory added twice with different owner or mode", e.path)
		default:
			return fmt.Errorf("%s: two different entries (from %q and %q)", e.path, old.src+old.link, e.src+e.link)
		}
	}
	b.entries[e.path] = e
	return nil
}

// hostPath is where a host file lands in the image: its directory with symlinks resolved, so
// /lib/x86_64-linux-gnu/libc.so.6 becomes /usr/lib/x86_64-linux-gnu/libc.so.6 and the image's own
// merged-/usr symlinks (/lib -> usr/lib) resolve to it as on the host.
func hostPath(p string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

// addHost copies a host file to the same path in the image. A symlink is kept as a symlink and its
// target copied too; an ELF file brings every library ldd lists and its program interpreter.
func (b *layerBuilder) addHost(p string) error {
	dst, err := hostPath(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if b.visited[dst] {
		return nil
	}
	b.visited[dst] = true
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(dst)
		if err != nil {
			return err
		}
		if err := b.put(&entry{path: dst, typ: tar.TypeSymlink, mode: 0o777, link: link}); err != nil {
			return err
		}
		target := link
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(dst), link)
		}
		return b.addHost(target)
	case fi.Mode().IsRegular():
		return b.addFile(dst, dst, fi)
	case fi.IsDir():
		return fmt.Errorf("%s is a directory: use tree", p)
	default:
		return fmt.Errorf("%s: unsupported file type %v", p, fi.Mode().Type())
	}
}

// addHostAs copies a host file (following symlinks) to another path of the image.
func (b *layerBuilder) addHostAs(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	return b.addFile(src, dst, fi)
}

func (b *layerBuilder) addFile(src, dst string, fi fs.FileInfo) error {
	if err := b.put(&entry{path: dst, typ: tar.TypeReg, mode: int64(fi.Mode().Perm()), src: src, size: fi.Size()}); err != nil {
		return err
	}
	libs, err := b.ldd.libs(src)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := b.addHost(l); err != nil {
			return fmt.Errorf("%s (needed by %s): %w", l, src, err)
		}
	}
	return nil
}

// addTree copies a host directory recursively. Symlinks inside are kept as they are (not followed);
// ELF files bring their libraries as with addHost.
func (b *layerBuilder) addTree(root string) error {
	base, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return b.put(&entry{path: p, typ: tar.TypeDir, mode: int64(fi.Mode().Perm())})
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			b.visited[p] = true
			return b.put(&entry{path: p, typ: tar.TypeSymlink, mode: 0o777, link: link})
		case fi.Mode().IsRegular():
			b.visited[p] = true
			return b.addFile(p, p, fi)
		default:
			return nil // sockets, fifos, devices: nothing an image needs
		}
	})
}

// finish adds the missing parent directories and returns the entries sorted by path, parents first.
func (b *layerBuilder) finish() ([]*entry, error) {
	for p, e := range b.entries {
		if e.weak {
			// A weak link over a lower layer's entry would shadow a real file (an applet over a binary).
			if l := b.below(p); l != nil {
				delete(b.entries, p)
			}
		}
	}
	for p := range b.entries {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := b.entries[d]; ok {
				if e.typ != tar.TypeDir {
					return nil, fmt.Errorf("%s: parent %s is not a directory in this layer", p, d)
				}
				continue
			}
			if l := b.below(d); l != nil {
				if l.typ != tar.TypeDir {
					return nil, fmt.Errorf("%s: parent %s is a %c entry of a lower layer", p, d, l.typ)
				}
				continue // keep the lower layer's owner and mode (an emptyDir mount point owned by the user)
			}
			b.entries[d] = &entry{path: d, typ: tar.TypeDir, mode: 0o755}
		}
	}
	out := make([]*entry, 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// writeLayer writes entries as an uncompressed tar with fixed mtimes and no user or group names.
func writeLayer(w io.Writer, entries []*entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     strings.TrimPrefix(e.path, "/"),
			Linkname: e.link,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX, // one format for every entry, whatever the path length
		}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		if e.typ == tar.TypeReg {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		if e.typ != tar.TypeReg {
			continue
		}
		if e.src == "" {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(tw, e.src, e.size); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("%s changed while building the image (%d bytes, planned %d)", src, n, size)
	}
	return nil
}

// stamp hashes everything that makes up the entries, host files by content.
func stamp(h io.Writer, entries []*entry) error {
	for _, e := range entries {
		fmt.Fprintf(h, "%q %c %o %d:%d %q %d\n", e.path, e.typ, e.mode, e.uid, e.gid, e.link, e.size)
		if e.typ != tar.TypeReg {
			continue
		}
		if e.src == "" {
			h.Write(e.data)
			continue
		}
		if err := copyFile(h, e.src, e.size); err != nil {
			return err
		}
	}
	return nil
}

// lddCache runs ldd once per ELF file that has a dynamic section.
type lddCache struct {
	known map[string][]string
}

func newLDDCache() *lddCache { return &lddCache{known: map[string][]string{}} }

// libs returns the shared libraries ldd lists for an ELF file plus its program interpreter
// (nil for anything else, including static binaries).
func (c *lddCache) libs(file string) ([]string, error) {
	if l, ok := c.known[file]; ok {
		return l, nil
	}
	interp, dynamic, err := elfInfo(file)
	if err != nil {
		return nil, err
	}
	var out []string
	if interp != "" {
		out = append(out, interp)
	}
	if dynamic {
		l, err := runLDD(file)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	c.known[file] = out
	return out, nil
}

func elfInfo(file string) (interp string, dynamic bool, err error) {
	f, err := elf.Open(file)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", false, nil // not ELF
		}
		return "", false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", false, fmt.Errorf("%s: PT_INTERP: %w", file, err)
			}
			interp = string(bytes.TrimRight(b, "\x00"))
		case elf.PT_DYNAMIC:
			dynamic = true
		}
	}
	return interp, dynamic, nil
}

// runLDD parses ldd's "name => /path (0x…)" and "/path (0x…)" lines; vdso has no path.
func runLDD(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).CombinedOutput()
	text := string(out)
	if strings.Contains(text, "statically linked") || strings.Contains(text, "not a dynamic executable") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v: %s", file, err, text)
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("ldd %s: %s", file, line)
		}
		if i := strings.Index(line, "=>"); i >= 0 {
			line = strings.TrimSpace(line[i+2:])
		}
		if !strings.HasPrefix(line, "/") {
			continue
		}
		if i := strings.Index(line, " ("); i >= 0 {
			line = line[:i]
		}
		libs = append(libs, line)
	}
	return libs, sc.Err()
}

// hashingWriter counts and hashes what passes through it.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashingWriter(w io.Writer) *hashingWriter { return &hashingWriter{w: w, h: sha256.New()} }

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func (hw *hashingWriter) digest() string { return hex.EncodeToString(hw.h.Sum(nil)) }
