package apis_test

import (
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEveryAPIIsEnabledAndNeverDisabled(t *testing.T) {
	var c *apis.APIs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		var err error
		c, err = apis.New(ctx, "apis", &apis.Args{Project: "omscloud-prod-eu"})
		return err
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	services := inv.OfType(apis.ServiceType)
	require.Len(t, services, len(apis.Services))
	for _, s := range services {
		assert.Equal(t, "omscloud-prod-eu", s.String("project"))
		for _, k := range []string{"disableOnDestroy", "disableDependentServices"} {
			v, set := s.Get(k)
			assert.True(t, set && v == false, "%s: %s must be stated false: the DR stack and people use the API too", s.Name, k)
		}
	}
	assert.Len(t, c.Enabled(), len(apis.Services))
}

// TestEveryAPITheStacksCallIsEnabled: the stacks' GCP resources call only APIs the component switches on.
func TestEveryAPITheStacksCallIsEnabled(t *testing.T) {
	for _, token := range []string{
		"gcp:compute/backendService:BackendService", "gcp:container/nodePool:NodePool", "gcp:sql/user:User",
		"gcp:kms/cryptoKey:CryptoKey", "gcp:secretmanager/secret:Secret", "gcp:serviceaccount/account:Account",
		"gcp:storage/bucket:Bucket", "gcp:servicenetworking/connection:Connection", "gcp:projects/iAMMember:IAMMember",
		"gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "gcp:certificatemanager/certificate:Certificate",
		"gcp:dns/recordSet:RecordSet", "gcp:organizations/getProject:getProject",
	} {
		api, err := apis.For(token)
		require.NoError(t, err, token)
		assert.Contains(t, apis.Services, api, token)
	}
	_, err := apis.For("gcp:bigquery/dataset:Dataset")
	assert.ErrorContains(t, err, "add its module to apis.byModule")
	for _, s := range apis.Services {
		assert.True(t, strings.HasSuffix(s, ".googleapis.com"), s)
	}
}
