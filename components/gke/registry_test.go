package gke

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImageRepository(t *testing.T) {
	const digest = "@sha256:9c41d7e3a05b86f2e1d4c7b093a8f5e26d1b4c8a7f03e95d2b6c1a8e4f7d0b39"
	for _, tc := range []struct {
		image string
		want  Repository
	}{
		{"us-docker.pkg.dev/omscloud-release/oms/oms" + digest, Repository{"us", "omscloud-release", "oms"}},
		{"europe-west1-docker.pkg.dev/acme-builds/releases/oms/api:1.4.2", Repository{"europe-west1", "acme-builds", "releases"}},
		{"northamerica-northeast1-docker.pkg.dev/my-project/r/oms:1.4.2" + digest, Repository{"northamerica-northeast1", "my-project", "r"}},
	} {
		got, err := ImageRepository(tc.image)
		require.NoError(t, err, tc.image)
		assert.Equal(t, tc.want, got, tc.image)
	}
	assert.Equal(t, "us-docker.pkg.dev/omscloud-release/oms", Repository{"us", "omscloud-release", "oms"}.String())

	for _, tc := range []struct{ image, want string }{
		{"oms:1.0.0", "pulled from docker.io"},
		{"library/redis:7.2.5", "pulled from docker.io"},
		{"docker.io/omscloud/oms" + digest, "pulled from docker.io"},
		{"ghcr.io/omscloud/oms:1.4.2", "pulled from ghcr.io"},
		{"gcr.io/omscloud-release/oms:1.4.2", "pulled from gcr.io"},
		{"us-docker.pkg.dev/omscloud-release/oms" + digest, "names no image inside a repository"},
		{"us-docker.pkg.dev/p/oms/oms:1.0.0", `"p" is not a GCP project id`},
		{"us-docker.pkg.dev/omscloud-release/OMS/oms:1.0.0", `"OMS" is not an Artifact Registry repository id`},
	} {
		_, err := ImageRepository(tc.image)
		require.Error(t, err, tc.image)
		assert.Contains(t, err.Error(), tc.want)
	}
}
