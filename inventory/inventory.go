// Package inventory evaluates a Pulumi program under mocks and records every resource it declares — type, name,
// parent and inputs as the engine would receive them — without credentials or network. It powers `omsctl plan`,
// the golden inventories of the shipped stacks and the policy checks.
package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Placeholders for values an inventory never shows.
const (
	Secret  = "[secret]"
	Unknown = "[unknown]"
)

// Resource is one declared resource.
type Resource struct {
	Type   string         `json:"type" yaml:"type"`
	Name   string         `json:"name" yaml:"name"`
	Parent string         `json:"parent" yaml:"parent"`
	Inputs map[string]any `json:"inputs" yaml:"inputs"`
	// URN and ParentURN identify resources uniquely: a child may share its component's name.
	URN       string `json:"-" yaml:"-"`
	ParentURN string `json:"-" yaml:"-"`
	// DependsOn holds the URNs this resource waits for (explicit and through its inputs).
	DependsOn []string `json:"-" yaml:"-"`
	// Protected is the resource's protect option: the engine refuses to delete or replace it.
	Protected bool `json:"-" yaml:"-"`
	// Aliases are the URNs the resource's aliases name, resolved as the engine resolves them: the state of a
	// resource under any of them carries over to URN without a replace.
	Aliases []string `json:"-" yaml:"-"`
}

// Waits reports whether r depends, directly, on the resource of this type and name.
func (r Resource) Waits(inv *Inventory, typ, name string) bool {
	for _, urn := range r.DependsOn {
		for _, d := range inv.Resources {
			if d.URN == urn && d.Type == typ && d.Name == name {
				return true
			}
		}
	}
	return false
}

// Inventory is everything a stack declares.
type Inventory struct {
	Stack     string         `json:"stack" yaml:"stack"`
	Resources []Resource     `json:"resources" yaml:"resources"`
	Counts    map[string]int `json:"counts" yaml:"counts"`
}

// New builds an inventory from recorded resources, in a stable order: depth-first by parent, then type and name.
func New(stack string, resources []Resource) *Inventory {
	children := map[string][]Resource{}
	for _, r := range resources {
		children[r.ParentURN] = append(children[r.ParentURN], r)
	}
	for _, cs := range children {
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].Type != cs[j].Type {
				return cs[i].Type < cs[j].Type
			}
			return cs[i].Name < cs[j].Name
		})
	}
	inv := &Inventory{Stack: stack, Counts: map[string]int{}}
	var walk func(parent string)
	walk = func(parent string) {
		for _, r := range children[parent] {
			inv.Resources = append(inv.Resources, r)
			inv.Counts[r.Type]++
			walk(r.URN)
		}
	}
	walk("")
	return inv
}

// OfType returns the resources of one type token.
func (inv *Inventory) OfType(typ string) []Resource {
	var out []Resource
	for _, r := range inv.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Find returns the resource with this type and name.
func (inv *Inventory) Find(typ, name string) (Resource, bool) {
	for _, r := range inv.Resources {
		if r.Type == typ && r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// Object returns the Kubernetes object of this type whose metadata.name is name.
func (inv *Inventory) Object(typ, name string) (Resource, bool) {
	for _, r := range inv.OfType(typ) {
		if r.String("metadata.name") == name {
			return r, true
		}
	}
	return Resource{}, false
}

// Roots returns the resources parented to the stack itself.
func (inv *Inventory) Roots() []Resource { return inv.Children(Resource{}) }

// Children returns the direct children of a resource.
func (inv *Inventory) Children(parent Resource) []Resource {
	var out []Resource
	for _, r := range inv.Resources {
		if r.ParentURN == parent.URN {
			out = append(out, r)
		}
	}
	return out
}

// Get walks a dotted path ("settings.ipConfiguration.ipv4Enabled", "nodeLocations[0]") through the inputs. A key
// that contains dots, such as a label key, escapes them: `metadata.labels.app\.kubernetes\.io/name`.
func (r Resource) Get(path string) (any, bool) {
	var cur any = r.Inputs
	for _, part := range splitPath(path) {
		name, idx, hasIdx := strings.Cut(part, "[")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
		if hasIdx {
			var i int
			if _, err := fmt.Sscanf(idx, "%d]", &i); err != nil {
				return nil, false
			}
			arr, ok := cur.([]any)
			if !ok || i >= len(arr) {
				return nil, false
			}
			cur = arr[i]
		}
	}
	return cur, true
}

func splitPath(path string) []string {
	var parts []string
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		switch {
		case path[i] == '\\' && i+1 < len(path) && path[i+1] == '.':
			b.WriteByte('.')
			i++
		case path[i] == '.':
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(path[i])
		}
	}
	return append(parts, b.String())
}

// String returns the input at path as a string ("" when absent).
func (r Resource) String(path string) string {
	v, _ := r.Get(path)
	s, _ := v.(string)
	return s
}

// Strings returns the input at path as a list of strings.
func (r Resource) Strings(path string) []string {
	v, _ := r.Get(path)
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Number returns the input at path as a number.
func (r Resource) Number(path string) (float64, bool) {
	v, ok := r.Get(path)
	f, isNum := v.(float64)
	return f, ok && isNum
}

// Bool returns the input at path as a boolean (false when absent).
func (r Resource) Bool(path string) bool {
	v, _ := r.Get(path)
	b, _ := v.(bool)
	return b
}

// YAML renders the inventory as the golden files store it.
func (inv *Inventory) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(inv); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// JSON renders the inventory as one JSON object.
func (inv *Inventory) JSON() ([]byte, error) { return json.MarshalIndent(inv, "", "  ") }

// Types lists the distinct type tokens, sorted.
func (inv *Inventory) Types() []string { return slices.Sorted(maps.Keys(inv.Counts)) }
