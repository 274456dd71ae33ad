package inventory

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type component struct{ pulumi.ResourceState }

// TestAliasesResolveAsTheEngineResolvesThem: an alias spec fills in what it leaves out from the resource itself, and
// names the parent it had (another one, or the stack's root).
func TestAliasesResolveAsTheEngineResolvesThem(t *testing.T) {
	inv, err := Evaluate(func(ctx *pulumi.Context) error {
		old := &component{}
		if err := ctx.RegisterComponentResource("test:index:Old", "old", old); err != nil {
			return err
		}
		now := &component{}
		if err := ctx.RegisterComponentResource("test:index:New", "new", now); err != nil {
			return err
		}
		moved := &component{}
		return ctx.RegisterComponentResource("test:index:Moved", "moved", moved, pulumi.Parent(now), pulumi.Aliases([]pulumi.Alias{
			{Parent: old},
			{NoParent: pulumi.Bool(true)},
			{Name: pulumi.String("renamed")},
			{URN: pulumi.URN("urn:pulumi:s::p::test:index:Any::whole")},
		}))
	}, "p", "s", nil, nil)
	require.NoError(t, err)
	r, ok := inv.Find("test:index:Moved", "moved")
	require.True(t, ok)
	assert.Equal(t, "urn:pulumi:s::p::test:index:New$test:index:Moved::moved", r.URN)
	assert.Equal(t, []string{
		"urn:pulumi:s::p::test:index:Old$test:index:Moved::moved",
		"urn:pulumi:s::p::test:index:Moved::moved",
		"urn:pulumi:s::p::test:index:New$test:index:Moved::renamed",
		"urn:pulumi:s::p::test:index:Any::whole",
	}, r.Aliases)
}
