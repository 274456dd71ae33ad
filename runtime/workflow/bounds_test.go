package workflow_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/alloctest"
	"github.com/omscloud/omscloud/runtime/workflow"
)

// yamlBomb is about n bytes of YAML repeating one anchored string of size bytes: it stands for n/3·size bytes.
func yamlBomb(size, n int) string {
	return "name: x\ndescription: &a " + strings.Repeat("x", size) + "\nrules: [" + strings.Repeat("*a,", n/3) + "*a]\n"
}

// TestYAMLAliasesAreRefusedAtTheirExpandedSize: the alias check counted references, not the bytes they expand
// to, so ~1 MB of YAML reusing a large anchor made the server build ~500 MB before answering 400.
func TestYAMLAliasesAreRefusedAtTheirExpandedSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"one large anchor, many aliases", yamlBomb(10_000, 12_000)},
		{"nested anchors (billion laughs)", "a: &a [" + strings.Repeat("x,", 9) + "x]\nb: &b [" + strings.Repeat("*a,", 9) + "*a]\n" +
			"c: &c [" + strings.Repeat("*b,", 9) + "*b]\nd: &d [" + strings.Repeat("*c,", 9) + "*c]\ne: &e [" + strings.Repeat("*d,", 9) + "*d]\n" +
			"f: &f [" + strings.Repeat("*e,", 9) + "*e]\ng: [" + strings.Repeat("*f,", 9) + "*f]\n"},
		{"alias to a mapping", "m: &m {" + strings.Repeat("k: "+strings.Repeat("v", 1000)+", ", 1) + "}\nrules: [" + strings.Repeat("*m,", 2000) + "*m]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloctest.Within(t, tc.name, len(tc.body), 8<<20, 200, func() { _, err = workflow.Decode([]byte(tc.body), "application/yaml") })
			require.Error(t, err)
			assert.Equal(t, oms.ETOOLARGE, oms.ErrorCode(err), err.Error())
			assert.Equal(t, "body", oms.ErrorField(err))
			assert.Contains(t, err.Error(), "expands to more than")
		})
	}
}

// TestYAMLMemoryBound: whatever the shape, a YAML definition costs a small constant plus a bounded multiple of its
// size, and the refusal names the limit.
func TestYAMLMemoryBound(t *testing.T) {
	for name, body := range map[string]string{
		"many small fields (flow)":  "name: x\nrules: [" + strings.Repeat("1,", workflow.MaxYAMLBytes/2-20) + "1]\n",
		"many small fields (block)": "name: x\nrules:\n" + strings.Repeat("- 1\n", workflow.MaxYAMLBytes/4-10),
		"deep nesting":              "name: x\nrules: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n",
		"giant field":               "name: x\ndescription: " + strings.Repeat("x", workflow.MaxYAMLBytes-50) + "\n",
		"largest allowed expansion": yamlBomb(100_000, 24),
		"too large":                 "name: x\ndescription: " + strings.Repeat("x", 1<<20) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			alloctest.Within(t, name, len(body), 8<<20, 200, func() { _, err = workflow.Decode([]byte(body), "application/yaml") })
			if name == "giant field" {
				return // decodes; Validate refuses a description over 1000 characters
			}
			require.Error(t, err)
			assert.Contains(t, []string{oms.EINVALID, oms.ETOOLARGE}, oms.ErrorCode(err), err.Error())
		})
	}
}
