package inventory

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGetWalksPathsWithIndexesAndEscapedDots(t *testing.T) {
	r := Resource{Inputs: map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "oms"}},
		"spec":     map[string]any{"ports": []any{map[string]any{"port": 80.0}}},
	}}
	assert.Equal(t, "oms", r.String(`metadata.labels.app\.kubernetes\.io/name`))
	n, ok := r.Number("spec.ports[0].port")
	assert.True(t, ok)
	assert.Equal(t, 80.0, n)
	_, ok = r.Get("spec.ports[1].port")
	assert.False(t, ok)
	_, ok = r.Get("metadata.labels.app")
	assert.False(t, ok)
}

func TestNewOrdersDepthFirstByURN(t *testing.T) {
	// A child may share its parent's name: the tree must follow URNs, not names.
	inv := New("s", []Resource{
		{Type: "t:b", Name: "x", Parent: "x", URN: "urn:child", ParentURN: "urn:comp"},
		{Type: "t:a", Name: "x", URN: "urn:comp"},
		{Type: "t:c", Name: "y", URN: "urn:other"},
	})
	var order []string
	for _, r := range inv.Resources {
		order = append(order, r.Type)
	}
	assert.Equal(t, []string{"t:a", "t:b", "t:c"}, order)
	assert.Equal(t, map[string]int{"t:a": 1, "t:b": 1, "t:c": 1}, inv.Counts)
}
