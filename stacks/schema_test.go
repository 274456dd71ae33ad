package stacks

import (
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The keys are Config's JSON fields: a field without a JSON name (Stack, Region) is no key, and structured keys are
// the objects and lists.
func TestSchemaIsTheConfigType(t *testing.T) {
	assert.Subset(t, Keys, []string{"environment", "region", "accounts", "sizing", "deletionProtection"})
	assert.NotContains(t, Keys, "Stack")
	assert.Len(t, Keys, len(keyKinds), "no key twice")
	for _, k := range []string{"accounts", "zones", "network", "sizing", "edge", "runtime", "dr", "labels", "database", "observability", "rotation", "backup"} {
		assert.True(t, structured(k), k)
	}
	for _, k := range []string{"environment", "region", "deletionProtection"} {
		assert.False(t, structured(k), k)
	}
}

// The two doors, `omsctl plan` (the stack file, ParseConfig) and `pulumi up` / `pulumi preview` (Program, reading the
// config the engine hands it), refuse the same configs with the same message. Before the schema was derived from the
// engine's config, the program read a fixed list of keys and accepted every case below.
func TestBothDoorsRefuseTheSameConfig(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string]string
		secret  []string
	}{
		{"misspelt key", map[string]string{"omscloud:zone": `["europe-west1-b"]`}, nil},
		{"plain-text secret under omscloud", map[string]string{"omscloud:dbPassword": "hunter2hunter2"}, nil},
		{"plain-text provider secret", map[string]string{"cloudflare:apiToken": "abc123"}, nil},
		{"retired key", map[string]string{"omscloud:projectNumber": "123456789012"}, nil},
		{"secret in a structured value", map[string]string{"omscloud:edge": `{"provider":"gcp","domain":"a.example.com","dns":{"managedZone":"example-com"},"cloudflare":{"apiToken":"abc"}}`}, nil},
		{"not a boolean", map[string]string{"omscloud:deletionProtection": "yes"}, nil},
		{"account in an unknown cell", map[string]string{"omscloud:database": `{"cells":[{"name":"main"}],"placement":{"main":["tailspin"],"b":["tailspin"]}}`}, nil},
		{"account in no cell", map[string]string{"omscloud:accounts": `["tailspin","northwind"]`, "omscloud:database": `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"b":["tailspin"]}}`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := with(tt.changes)
			_, planErr := ParseConfig("s", values, tt.secret)
			require.Error(t, planErr, "omsctl plan refuses it")

			withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = values, tt.secret }
			upErr := pulumi.RunErr(Program, pulumi.WithMocks(Project, "s", &inventory.Mocks{}), withConfig)
			require.Error(t, upErr, "pulumi up refuses it")
			assert.Contains(t, upErr.Error(), planErr.Error(), "the same message at both doors")
			assert.NotContains(t, upErr.Error(), "hunter2hunter2")
		})
	}
}

func TestConfigFromContextSeesEveryKey(t *testing.T) {
	values := with(map[string]string{"gcp:project": "p", "omscloud:zone": "x"})
	secret := []string{"gcp:project"}
	var got map[string]string
	var gotSecret []string
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		var err error
		got, gotSecret, err = ConfigFromContext(ctx)
		return err
	}, pulumi.WithMocks(Project, "s", &inventory.Mocks{}), func(info *pulumi.RunInfo) {
		info.Config, info.ConfigSecretKeys = values, secret
	})
	require.NoError(t, err, "the SDK keeps the run's config where runConfigKeys reads it")
	assert.Equal(t, values, got)
	assert.Equal(t, secret, gotSecret)
}
