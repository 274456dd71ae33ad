package stacks

import (
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The config schema is Config itself: each top-level field with a JSON name is a key under the omscloud namespace,
// of that field's kind. Adding a setting is adding a field.
var Keys, keyKinds = schemaOf(reflect.TypeFor[Config]())

func schemaOf(t reflect.Type) (keys []string, kinds map[string]reflect.Kind) {
	kinds = map[string]reflect.Kind{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
		kinds[name] = f.Type.Kind()
	}
	return keys, kinds
}

// structured keys hold a JSON object or list (`pulumi config set --path` writes them); the rest are scalars.
func structured(name string) bool {
	switch keyKinds[name] {
	case reflect.Struct, reflect.Slice, reflect.Map:
		return true
	}
	return false
}

// ConfigFromContext is every config value the program was started with, in every namespace, and which of them are
// secrets: ParseConfig then judges exactly what `omsctl plan` judges from the stack file, so a misspelt key or a
// plain-text secret fails `pulumi up` and `pulumi preview` too.
func ConfigFromContext(ctx *pulumi.Context) (map[string]string, []string, error) {
	keys, err := runConfigKeys(ctx)
	if err != nil {
		return nil, nil, err
	}
	values := map[string]string{}
	var secretKeys []string
	for _, k := range keys {
		v, _ := ctx.GetConfig(k)
		values[k] = v
		if ctx.IsConfigSecret(k) {
			secretKeys = append(secretKeys, k)
		}
	}
	return values, secretKeys, nil
}

// errConfigKeys means the SDK no longer keeps the run's config where runConfigKeys reads it.
var errConfigKeys = errors.New("cannot list the stack's config keys: the Pulumi SDK's Context changed; update stacks.runConfigKeys")

// runConfigKeys lists the keys of the config the engine (or the mocks) started the program with. The Go SDK offers
// lookups by key only (Context.GetConfig), and a key nobody looks up is silently ignored, so this reads the key set
// of the context's RunInfo.Config (values still come from GetConfig). The field path is the pinned SDK's;
// TestConfigFromContextSeesEveryKey fails if an upgrade moves it.
func runConfigKeys(ctx *pulumi.Context) ([]string, error) {
	state := reflect.ValueOf(ctx).Elem().FieldByName("state")
	if !state.IsValid() || state.Kind() != reflect.Pointer || state.IsNil() {
		return nil, errConfigKeys
	}
	cfg := state.Elem().FieldByName("info")
	if cfg.IsValid() {
		cfg = cfg.FieldByName("Config")
	}
	if !cfg.IsValid() || cfg.Kind() != reflect.Map || cfg.Type().Key().Kind() != reflect.String {
		return nil, errConfigKeys
	}
	keys := make([]string, 0, cfg.Len())
	for _, k := range cfg.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.Sort(keys)
	return keys, nil
}
