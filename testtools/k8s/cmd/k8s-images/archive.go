package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
)

// plannedLayer is a layer's entries, ready to write.
type plannedLayer struct {
	name    string
	entries []*entry
}

// plan resolves every item of every layer; a layer sees the entries of the layers below it.
func plan(img Image, ldd *lddCache) ([]plannedLayer, error) {
	union := map[string]*entry{}
	var out []plannedLayer
	for _, l := range img.Layers {
		b := newLayerBuilder(ldd, func(p string) *entry { return union[p] })
		for _, it := range l.Items {
			if err := it(b); err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Name, err)
			}
		}
		entries, err := b.finish()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
		for _, e := range entries {
			union[e.path] = e
		}
		out = append(out, plannedLayer{name: l.Name, entries: entries})
	}
	return out, nil
}

// The docker image config (the fields a runtime reads) and docker-archive manifest.
type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Created      string          `json:"created"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history"`
}

type containerConfig struct {
	User       string   `json:"User,omitempty"`
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

const created = "1970-01-01T00:00:00Z"

// writeArchive writes the docker-archive tarball of img to dst: manifest.json, the config and one
// uncompressed <diffid>/layer.tar per layer, which `ctr images import` and `docker load` accept.
// Layers go through temporary files next to dst first (the outer tar needs their sizes).
func writeArchive(dst string, img Image, layers []plannedLayer) error {
	var blobs []blob
	defer func() {
		for _, b := range blobs {
			os.Remove(b.file)
		}
	}()
	cfg := imageConfig{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      created,
		Config: containerConfig{
			User: img.Config.User, Env: img.Config.Env, Entrypoint: img.Config.Entrypoint,
			Cmd: img.Config.Cmd, WorkingDir: img.Config.WorkingDir,
		},
		RootFS: rootFS{Type: "layers", DiffIDs: []string{}},
	}
	man := manifestEntry{RepoTags: img.Refs}
	for i, l := range layers {
		f, err := os.CreateTemp(filepath.Dir(dst), fmt.Sprintf(".%s-layer%d-*", img.Name, i))
		if err != nil {
			return err
		}
		hw := newHashingWriter(f)
		err = writeLayer(hw, l.entries)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		blobs = append(blobs, blob{hw.digest() + "/layer.tar", f.Name()})
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.name, err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, "sha256:"+hw.digest())
		cfg.History = append(cfg.History, history{Created: created, CreatedBy: "k8s-images: " + l.name})
		man.Layers = append(man.Layers, hw.digest()+"/layer.tar")
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfgJSON)
	man.Config = hex.EncodeToString(sum[:]) + ".json"
	manJSON, err := json.Marshal([]manifestEntry{man})
	if err != nil {
		return err
	}

	tmp := dst + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	files := map[string][]byte{man.Config: cfgJSON, "manifest.json": manJSON}
	names := []string{man.Config, "manifest.json"}
	seen := map[string]bool{}
	for _, b := range blobs {
		if !seen[b.name] { // two identical layers are stored once
			seen[b.name] = true
			names = append(names, b.name)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeMember(tw, n, files[n], blobs); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// blob is a layer.tar member of the archive and the temporary file holding it.
type blob struct{ name, file string }

func writeMember(tw *tar.Writer, name string, data []byte, blobs []blob) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
	if data != nil {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, b := range blobs {
		if b.name != name {
			continue
		}
		fi, err := os.Stat(b.file)
		if err != nil {
			return err
		}
		h.Size = fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		return copyFile(tw, b.file, fi.Size())
	}
	return fmt.Errorf("no blob %s", name)
}

// imageStamp hashes an image's inputs: the refs, the config, every entry with host files by content,
// and salt (this program's own hash, so a change of the writer rebuilds everything).
func imageStamp(img Image, layers []plannedLayer, salt string) (string, error) {
	h := sha256.New()
	cfg, _ := json.Marshal(img.Config)
	fmt.Fprintf(h, "%s\n%q\n%s\n", salt, img.Refs, cfg)
	for _, l := range layers {
		fmt.Fprintf(h, "layer %s\n", l.name)
		if err := stamp(h, l.entries); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
