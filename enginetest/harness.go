package enginetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Passphrase encrypts the secrets of the throwaway test stacks.
const Passphrase = "omscloud-enginetest"

// CLIVersion returns the Pulumi CLI version pinned in testtools/pulumi/go.mod.
func CLIVersion(projectDir string) (string, error) {
	path := filepath.Join(projectDir, "testtools", "pulumi", "go.mod")
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the pinned Pulumi CLI version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "require" && fields[1] == "github.com/pulumi/pulumi/pkg/v3" {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("%s requires no github.com/pulumi/pulumi/pkg/v3", path)
}

// CLIRoot is where testtools/pulumi-build.sh puts the CLI of a version: <root>/bin/pulumi.
func CLIRoot(version string) string {
	cache := os.Getenv("OMSCLOUD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "omscloud")
	}
	return filepath.Join(cache, "pulumi", version)
}

// Env is one engine-test environment: stand-in providers, a file backend and a scratch copy of the project's
// Pulumi.yaml and Pulumi.<stack>.yaml files (the engine writes stack config there; the repository is never touched).
type Env struct {
	ProjectDir string
	WorkDir    string
	Backend    string
	Command    auto.PulumiCommand
	Providers  *Providers
	// Vars is the environment of every pulumi command.
	Vars map[string]string
}

// New prepares an environment, or skips the test when the Pulumi CLI has not been built — except under CI=true,
// where a missing CLI fails.
func New(t testing.TB) *Env {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	projectDir, err := stacks.FindProjectDir(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	version, err := CLIVersion(projectDir)
	if err != nil {
		t.Fatal(err)
	}
	root := CLIRoot(version)
	if _, err := os.Stat(filepath.Join(root, "bin", "pulumi")); err != nil {
		msg := fmt.Sprintf("Pulumi CLI %s not built (%v): run testtools/pulumi-build.sh", version, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	if err != nil {
		t.Fatalf("pulumi command: %v", err)
	}
	providers, err := StartProviders()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(providers.Stop)

	scratch := t.TempDir()
	e := &Env{
		ProjectDir: projectDir,
		WorkDir:    filepath.Join(scratch, "project"),
		Backend:    "file://" + filepath.Join(scratch, "backend"),
		Command:    cmd,
		Providers:  providers,
	}
	for _, d := range []string{e.WorkDir, filepath.Join(scratch, "backend"), filepath.Join(scratch, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := CopyProject(projectDir, e.WorkDir); err != nil {
		t.Fatal(err)
	}
	e.Vars = map[string]string{
		"PULUMI_BACKEND_URL":                          e.Backend,
		"PULUMI_CONFIG_PASSPHRASE":                    Passphrase,
		"PULUMI_HOME":                                 filepath.Join(scratch, "home"),
		"PULUMI_SKIP_UPDATE_CHECK":                    "true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		"PULUMI_DEBUG_PROVIDERS":                      providers.DebugProviders(),
	}
	return e
}

// CopyProject copies Pulumi.yaml and every Pulumi.<stack>.yaml of projectDir into dir.
func CopyProject(projectDir, dir string) error {
	return copyFiles(filepath.Join(projectDir, "Pulumi*.yaml"), dir)
}

// AddTestStacks copies the test-only stack files (stacks.TestStacksDir) beside the shipped ones in the scratch
// project, for a test that runs them too, and returns their names.
func (e *Env) AddTestStacks(t testing.TB) []string {
	t.Helper()
	dir := filepath.Join(e.ProjectDir, stacks.TestStacksDir)
	if err := copyFiles(filepath.Join(dir, "Pulumi.*.yaml"), e.WorkDir); err != nil {
		t.Fatal(err)
	}
	names, err := stacks.ListStacks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func copyFiles(pattern, dir string) error {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WorkspaceOptions run the engine in this environment.
func (e *Env) WorkspaceOptions() []auto.LocalWorkspaceOption {
	return []auto.LocalWorkspaceOption{auto.WorkDir(e.WorkDir), auto.Pulumi(e.Command), auto.EnvVars(e.Vars)}
}

// Stack creates or selects a stack running program inline.
func (e *Env) Stack(ctx context.Context, t testing.TB, name string, program pulumi.RunFunc) auto.Stack {
	t.Helper()
	s, err := auto.UpsertStackInlineSource(ctx, name, stacks.Project, program, e.WorkspaceOptions()...)
	if err != nil {
		t.Fatalf("stack %s: %v", name, err)
	}
	return s
}

// StateResource is one resource of an exported stack state.
type StateResource struct {
	URN          string         `json:"urn"`
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Custom       bool           `json:"custom"`
	Parent       string         `json:"parent"`
	Dependencies []string       `json:"dependencies"`
	Inputs       map[string]any `json:"inputs"`
	Outputs      map[string]any `json:"outputs"`
}

// SecretSig marks an encrypted value in exported state: {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": ...}.
const SecretSig = "4dabf18193072939515e22adb298388d"

// IsSecret reports whether a decoded state value is an encrypted secret.
func IsSecret(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m[SecretSig]
	return ok
}

// RawState reads a stack's state file as the backend stores it — secrets encrypted — and its resources.
// (Stack.Export decrypts secrets: it runs `pulumi stack export --show-secrets`.)
func (e *Env) RawState(stack string) ([]byte, []StateResource, error) {
	dir := strings.TrimPrefix(e.Backend, "file://")
	path := filepath.Join(dir, ".pulumi", "stacks", stacks.Project, stack+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read the state of %s: %w", stack, err)
	}
	var cp struct {
		Checkpoint struct {
			Latest struct {
				Resources []StateResource `json:"resources"`
			} `json:"latest"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, nil, fmt.Errorf("decode the state of %s: %w", stack, err)
	}
	return data, cp.Checkpoint.Latest.Resources, nil
}

// APINodes are a state's resources as apis.MissingDependencies reads them.
func APINodes(resources []StateResource) []apis.Node {
	out := make([]apis.Node, 0, len(resources))
	for _, r := range resources {
		n := apis.Node{URN: r.URN, Type: r.Type, Parent: r.Parent, Dependencies: r.Dependencies}
		n.Project, _ = r.Inputs["project"].(string)
		n.Service, _ = r.Inputs["service"].(string)
		out = append(out, n)
	}
	return out
}
