package stacks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/inventory"
	"gopkg.in/yaml.v3"
)

// Toggling dr.enabled on a production stack: by default the backup bucket sits in the DR region with DR on and in
// the jurisdiction's multi-region without, but a bucket's location is immutable (a new location is a new bucket, and
// the bucket is protected), so a plain toggle is refused at preview. ToggleDR instead pins the bucket where it is
// (backup.location): its archives, key and lifecycle stay, and both placements keep backups outside the primary
// region. Disabling also deletes the DR site the stack declares in advance (reserved address or tunnel and pool),
// which is protected: the operator releases it explicitly.

// DRToggle is the change of a stack file that turns its DR site on or off.
type DRToggle struct {
	Stack  string
	Enable bool
	// File is the new content of Pulumi.<stack>.yaml.
	File []byte
	// Bucket is where the backup bucket is, before and after.
	Bucket backup.BucketArgs
	// Pinned reports whether File pins Bucket (backup.location) because the new default would move it.
	Pinned bool
	// Released are the URNs of the DR site's resources that disabling deletes; they are protected, so each must be
	// unprotected (`pulumi state unprotect`) before the up that deletes it.
	Released []string
}

// ToggleDR computes the stack file that sets dr.enabled to enable without moving the backup bucket. The stack must
// be a valid production stack; the new file is validated and planned offline before it is returned.
func ToggleDR(dir, stack string, enable bool) (*DRToggle, error) {
	sf, err := LoadStackFile(dir, stack)
	if err != nil {
		return nil, err
	}
	cfg, before, err := Plan(sf)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Environment != Production:
		return nil, fmt.Errorf("stack %s is a %s stack: only production stacks have a DR site", stack, cfg.Environment)
	case cfg.DR.Enabled == enable:
		return nil, fmt.Errorf("stack %s already has dr.enabled %t: nothing to change", stack, enable)
	case !enable && cfg.DR.Active:
		return nil, fmt.Errorf("stack %s has dr.active: traffic is on the DR site; fail back first (omsctl dr deactivate, README \"Disaster recovery\")", stack)
	}
	bucket, _, _ := cfg.backupPlacement()
	next := *cfg
	next.DR.Enabled = enable
	nextDefault, _, _ := next.defaultBackupPlacement()
	t := &DRToggle{Stack: stack, Enable: enable, Bucket: bucket,
		Pinned: cfg.Backup.Location == "" && !sameLocation(bucket, nextDefault)}

	data, err := os.ReadFile(sf.Path)
	if err != nil {
		return nil, err
	}
	var pin *BackupConfig
	if t.Pinned {
		pin = &BackupConfig{Location: bucket.Location, DataLocations: bucket.DataLocations}
	}
	if t.File, err = editStackFile(data, enable, pin); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(sf.Path), err)
	}
	nsf, err := parseStackFile(dir, stack, t.File)
	if err != nil {
		return nil, err
	}
	ncfg, after, err := Plan(nsf)
	if err != nil {
		return nil, fmt.Errorf("the toggled stack file does not plan: %w", err)
	}
	if b, _, _ := ncfg.backupPlacement(); !sameLocation(b, bucket) {
		return nil, fmt.Errorf("the toggled stack file would move the backup bucket from %s to %s: pin it with backup.location", bucket.Location, b.Location)
	}
	kept := map[string]bool{}
	for _, r := range after.Resources {
		kept[r.URN] = true
	}
	for _, r := range before.Resources {
		if !kept[r.URN] && isDRSite(r) {
			t.Released = append(t.Released, r.URN)
		}
	}
	slices.Sort(t.Released)
	return t, nil
}

// isDRSite reports a resource of the DR site component (omscloud:dr:DR), which production protects.
func isDRSite(r inventory.Resource) bool {
	return !strings.HasPrefix(r.Type, "omscloud:") && strings.Contains(r.URN, "$omscloud:dr:")
}

func sameLocation(a, b backup.BucketArgs) bool {
	return strings.EqualFold(a.Location, b.Location) && slices.Equal(a.DataLocations, b.DataLocations)
}

// editStackFile sets omscloud:dr.enabled and, with pin, omscloud:backup in a stack file, keeping its comments and
// the order of its keys.
func editStackFile(data []byte, enable bool, pin *BackupConfig) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a stack file: want a mapping with config")
	}
	config := mappingValue(doc.Content[0], "config")
	dr := mappingValue(config, Namespace+":dr")
	setScalar(dr, "enabled", fmt.Sprint(enable), "!!bool")
	if pin != nil {
		var node yaml.Node
		if err := node.Encode(pin); err != nil {
			return nil, err
		}
		*mappingValue(config, Namespace+":backup") = node
		for i := 0; i < len(config.Content); i += 2 {
			if k := config.Content[i]; k.Value == Namespace+":backup" {
				k.HeadComment = "A bucket's location never changes: pinned where it was when dr.enabled was toggled."
			}
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// mappingValue returns the value of key in mapping m, adding an empty mapping when it is missing.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

func setScalar(m *yaml.Node, key, value, tag string) {
	v := mappingValue(m, key)
	*v = yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
