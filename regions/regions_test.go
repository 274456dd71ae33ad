package regions

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCatalogEntriesKeepTheRules(t *testing.T) {
	for _, r := range All() {
		t.Run(r.ID, func(t *testing.T) {
			require.NoError(t, r.Validate())
			assert.GreaterOrEqual(t, len(r.Primary.Zones), 3)
			assert.NotEqual(t, r.Primary.GCPRegion, r.DR.GCPRegion)
		})
	}
}

func TestCatalogServesTheFourLaunchRegions(t *testing.T) {
	assert.Equal(t, []string{"au", "eu", "sg", "us"}, IDs())
}

func TestDRStaysInJurisdictionExceptWhereOnlyOneRegionExists(t *testing.T) {
	for _, r := range All() {
		drJ, ok := JurisdictionOf(r.DR.GCPRegion)
		require.True(t, ok, r.ID)
		if r.DRCrossBorder {
			// Only a jurisdiction with a single GCP region may leave it.
			var inJurisdiction int
			for _, g := range KnownGCPRegions() {
				if j, _ := JurisdictionOf(g); j == r.Jurisdiction {
					inJurisdiction++
				}
			}
			assert.Equal(t, 1, inJurisdiction, "%s is marked cross-border but has other regions", r.ID)
			continue
		}
		assert.Equal(t, r.Jurisdiction, drJ, "%s DR leaves its jurisdiction", r.ID)
	}
	eu, err := Get("eu")
	require.NoError(t, err)
	assert.False(t, eu.DRCrossBorder, "EU data stays in the EU")
	sg, err := Get("sg")
	require.NoError(t, err)
	assert.True(t, sg.DRCrossBorder)
}

func TestGetUnknownRegionListsValidOnes(t *testing.T) {
	_, err := Get("mars")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"mars"`)
	assert.Contains(t, err.Error(), "au, eu, sg, us")
}

func TestValidateRejectsBrokenEntries(t *testing.T) {
	base, err := Get("eu")
	require.NoError(t, err)
	tests := []struct {
		name   string
		mutate func(*Region)
		want   string
	}{
		{"too few zones", func(r *Region) { r.Primary.Zones = r.Primary.Zones[:2] }, "at least 3"},
		{"zone of another region", func(r *Region) { r.Primary.Zones[0] = "us-central1-a" }, "not in europe-west1"},
		{"DR outside jurisdiction", func(r *Region) {
			r.DR = Site{GCPRegion: "us-east4", Zones: zones("us-east4", "a", "b", "c")}
		}, "outside EU"},
		{"DR same as primary", func(r *Region) { r.DR = r.Primary }, "another GCP region"},
		{"cross-border flag inside jurisdiction", func(r *Region) { r.DRCrossBorder = true }, "DRCrossBorder is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base.clone()
			tt.mutate(&r)
			err := r.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestAllReturnsCopies(t *testing.T) {
	a := All()
	a[0].Primary.Zones[0] = "changed"
	assert.NotEqual(t, "changed", All()[0].Primary.Zones[0])
}
