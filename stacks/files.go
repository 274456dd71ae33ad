package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// StackFile is a stack's config as read from Pulumi.yaml and Pulumi.<stack>.yaml, flattened the way Pulumi hands
// config to a program. Encrypted values are never decrypted: they read as "[secret]" and are listed in SecretKeys.
type StackFile struct {
	Stack      string
	Path       string
	Values     map[string]string
	SecretKeys []string
}

// secretPlaceholder stands in for an encrypted value.
const secretPlaceholder = "[secret]"

// FindProjectDir walks up from dir to the directory holding Pulumi.yaml.
func FindProjectDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "Pulumi.yaml")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Pulumi.yaml in %s or above: run omsctl inside the omscloud repository or pass --dir", abs)
		}
	}
}

// ListStacks returns the names of the stacks with a Pulumi.<stack>.yaml in dir, sorted.
func ListStacks(dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "Pulumi.*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "Pulumi."), ".yaml"))
	}
	sort.Strings(out)
	return out, nil
}

// TestStacksDir, under the project directory, holds stack files that the tests plan and check like the shipped
// ones but that no workflow deploys: examples of what no shipped stack needs yet (database cells).
const TestStacksDir = "stacks/testdata/stacks"

// LoadStackFile reads the project defaults from Pulumi.yaml and the stack's own Pulumi.<stack>.yaml (which wins).
func LoadStackFile(dir, stack string) (*StackFile, error) {
	return LoadStackFileFrom(dir, dir, stack)
}

// LoadStackFileFrom is LoadStackFile with the stack's file in stackDir (TestStacksDir) rather than in projectDir.
func LoadStackFileFrom(projectDir, stackDir, stack string) (*StackFile, error) {
	path := filepath.Join(stackDir, "Pulumi."+stack+".yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		stacks, _ := ListStacks(stackDir)
		return nil, fmt.Errorf("stack %q has no %s: known stacks are %s (create one with `omsctl tenant new` or copy a file)", stack, filepath.Base(path), strings.Join(stacks, ", "))
	}
	if err != nil {
		return nil, err
	}
	return parseStackFileAt(projectDir, path, stack, data)
}

// parseStackFile is LoadStackFile with the stack file's content given.
func parseStackFile(dir, stack string, data []byte) (*StackFile, error) {
	return parseStackFileAt(dir, filepath.Join(dir, "Pulumi."+stack+".yaml"), stack, data)
}

func parseStackFileAt(dir, path, stack string, data []byte) (*StackFile, error) {
	sf := &StackFile{Stack: stack, Path: path, Values: map[string]string{}}
	secret := map[string]bool{}

	var project struct {
		Name   string               `yaml:"name"`
		Config map[string]yaml.Node `yaml:"config"`
	}
	if err := readYAML(filepath.Join(dir, "Pulumi.yaml"), &project); err != nil {
		return nil, err
	}
	for k, node := range project.Config {
		full := qualify(k, project.Name)
		// Project config is either a value or {type, default|value, description}.
		if node.Kind == yaml.MappingNode {
			var decl map[string]yaml.Node
			if err := node.Decode(&decl); err == nil {
				if d, ok := decl["default"]; ok {
					node = d
				} else if v, ok := decl["value"]; ok {
					node = v
				} else if _, typed := decl["type"]; typed {
					continue
				}
			}
		}
		v, isSecret, err := flatten(&node)
		if err != nil {
			return nil, fmt.Errorf("Pulumi.yaml: config %s: %w", k, err)
		}
		sf.Values[full], secret[full] = v, isSecret
	}

	var doc struct {
		Config map[string]yaml.Node `yaml:"config"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", sf.Path, err)
	}
	for k, node := range doc.Config {
		full := qualify(k, project.Name)
		v, isSecret, err := flatten(&node)
		if err != nil {
			return nil, fmt.Errorf("%s: config %s: %w", sf.Path, k, err)
		}
		sf.Values[full], secret[full] = v, isSecret
	}
	for k, s := range secret {
		if s {
			sf.SecretKeys = append(sf.SecretKeys, k)
		}
	}
	sort.Strings(sf.SecretKeys)
	return sf, nil
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// qualify adds the project namespace to a bare key, as Pulumi does.
func qualify(key, project string) string {
	if strings.Contains(key, ":") {
		return key
	}
	return project + ":" + key
}

// flatten renders a config node as Pulumi passes it to programs: scalars as their text, objects and arrays as
// JSON. A {secure: ...} anywhere marks the whole key secret and stands in as the placeholder.
func flatten(node *yaml.Node) (string, bool, error) {
	v, isSecret, err := decodeNode(node)
	if err != nil {
		return "", false, err
	}
	if s, ok := v.(string); ok {
		return s, isSecret, nil
	}
	if node.Kind == yaml.ScalarNode {
		return node.Value, isSecret, nil
	}
	b, err := json.Marshal(v)
	return string(b), isSecret, err
}

func decodeNode(node *yaml.Node) (any, bool, error) {
	switch node.Kind {
	case yaml.MappingNode:
		if len(node.Content) == 2 && node.Content[0].Value == "secure" {
			return secretPlaceholder, true, nil
		}
		out := map[string]any{}
		anySecret := false
		for i := 0; i+1 < len(node.Content); i += 2 {
			v, s, err := decodeNode(node.Content[i+1])
			if err != nil {
				return nil, false, err
			}
			out[node.Content[i].Value] = v
			anySecret = anySecret || s
		}
		return out, anySecret, nil
	case yaml.SequenceNode:
		out := []any{}
		anySecret := false
		for _, c := range node.Content {
			v, s, err := decodeNode(c)
			if err != nil {
				return nil, false, err
			}
			out = append(out, v)
			anySecret = anySecret || s
		}
		return out, anySecret, nil
	case yaml.ScalarNode:
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, false, err
		}
		if node.Tag == "!!str" {
			return node.Value, false, nil
		}
		return v, false, nil
	case yaml.AliasNode:
		return decodeNode(node.Alias)
	}
	return nil, false, fmt.Errorf("unsupported YAML node")
}

// Config parses and validates the stack's settings.
func (sf *StackFile) Config() (*Config, error) {
	return ParseConfig(sf.Stack, sf.Values, sf.SecretKeys)
}
