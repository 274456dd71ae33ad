// Package workflow reads workflow definitions (JSON or YAML) and ships the
// default workflows every account starts with.
package workflow

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"sort"

	"go.yaml.in/yaml/v3"

	oms "github.com/omscloud/omscloud/runtime"
)

//go:embed defaults/*.yaml
var defaultsFS embed.FS

// Parse decodes and validates a definition.
func Parse(body []byte, contentType string) (*oms.Workflow, error) {
	w, err := Decode(body, contentType)
	if err != nil {
		return nil, err
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return w, nil
}

// Decode reads a definition without validating it. The media type selects the
// syntax: application/yaml (or x-yaml, text/yaml), else JSON. Unknown fields
// are errors in both, so a misspelt key never silently does nothing.
func Decode(body []byte, contentType string) (*oms.Workflow, error) {
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return nil, oms.Errorf(oms.EUNSUPPORTED, "Content-Type", "%q: use application/json or application/yaml", contentType)
		}
	}
	switch mt {
	case "", "application/json":
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		var err error
		if body, err = yamlToJSON(body); err != nil {
			return nil, err
		}
	default:
		return nil, oms.Errorf(oms.EUNSUPPORTED, "Content-Type", "%q not supported: use application/json or application/yaml", mt)
	}
	var w oms.Workflow
	if err := oms.DecodeStrict(bytes.NewReader(body), &w); err != nil {
		return nil, err
	}
	if w.Version != 0 {
		return nil, oms.Invalid("version", "assigned by the OMS: leave it out")
	}
	if w.CreatedAt != nil {
		return nil, oms.Invalid("createdAt", "set by the OMS: leave it out")
	}
	return &w, nil
}

// Limits of YAML definitions. Aliases are counted at the size of what they
// refer to, before anything is expanded: a small document reusing a large
// anchor many times cannot make the server build a large value.
const (
	// MaxYAMLBytes bounds a YAML definition as sent: parsing costs up to ~200 times its size (the
	// shipped definitions are under 2 KiB).
	MaxYAMLBytes = 128 << 10
	// MaxExpandedBytes bounds the JSON a YAML definition stands for, aliases expanded: the JSON body limit.
	MaxExpandedBytes = 1 << 20
)

// yamlToJSON re-encodes one YAML document as JSON, so both syntaxes go through
// the same strict decoder and give the same errors.
func yamlToJSON(body []byte) ([]byte, error) {
	if len(body) > MaxYAMLBytes {
		return nil, oms.Errorf(oms.ETOOLARGE, "body", "YAML definition larger than %d bytes", MaxYAMLBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, oms.Invalid("body", "malformed YAML: %v", err)
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		return nil, oms.Invalid("body", "more than one YAML document: send one workflow")
	}
	if n := expandedSize(&doc, map[*yaml.Node]int{}, MaxExpandedBytes); n > MaxExpandedBytes {
		return nil, oms.Errorf(oms.ETOOLARGE, "body", "YAML expands to more than %d bytes of JSON (aliases count at the size of what they repeat)", MaxExpandedBytes)
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, oms.Invalid("body", "malformed YAML: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, oms.Invalid("body", "YAML that has no JSON form (keys must be strings): %v", err)
	}
	return b, nil
}

// expandedSize is about the size of n's JSON with every alias expanded, computed
// without expanding: each node's size is counted once and reused by its aliases.
// It stops counting past limit, and an alias within its own anchor counts as too large.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int, limit int) int {
	if s, ok := memo[n]; ok {
		if s < 0 {
			return limit + 1 // an alias inside the node it refers to
		}
		return s
	}
	memo[n] = -1
	size := len(n.Value) + 4 // quotes, separator
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		size = expandedSize(n.Alias, memo, limit)
	}
	for _, c := range n.Content {
		if size += expandedSize(c, memo, limit); size > limit {
			break
		}
	}
	memo[n] = size
	return size
}

// Defaults returns the shipped workflows: home-delivery (HD) and click-and-collect (CC).
func Defaults() ([]*oms.Workflow, error) {
	files, err := fs.Glob(defaultsFS, "defaults/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*oms.Workflow
	for _, f := range files {
		b, err := defaultsFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		w, err := Parse(b, "application/yaml")
		if err != nil {
			return nil, fmt.Errorf("default workflow %s: %w", f, err)
		}
		out = append(out, w)
	}
	return out, nil
}
