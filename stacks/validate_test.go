package stacks

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDRRegionMessagesStateOnlyWhatIsTrue: a DR region outside the jurisdiction gets the message that fits the
// stack's region. Where the jurisdiction has several GCP regions (us, eu), the DR region must move back inside it,
// and the message lists where; only a jurisdiction with a single GCP region (sg: regions.Region.DRCrossBorder) may
// keep its DR site across the border, once acknowledged.
func TestDRRegionMessagesStateOnlyWhatIsTrue(t *testing.T) {
	us := map[string]string{"omscloud:region": "us", "omscloud:project": "omscloud-prod-us",
		"omscloud:edge": `{"provider":"gcp","domain":"api.us.example.com","dns":{"managedZone":"example-com"}}`}
	sg := map[string]string{"omscloud:region": "sg", "omscloud:project": "omscloud-prod-sg"}
	and := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for mk, mv := range m {
			out[mk] = mv
		}
		return out
	}
	tests := []struct {
		name    string
		values  map[string]string
		key     string   // the one DR key with a problem; "" for none
		mention []string // what the message says
		never   []string // what it must not claim
	}{
		{name: "US stack with an EU DR region", values: and(us, "omscloud:dr", `{"region":"europe-west4"}`),
			key:     "omscloud:dr.region",
			mention: []string{`"europe-west4" lies in EU, outside the jurisdiction of region us`, "must stay in US", "us-east4 (the catalog's DR region", "us-east1", "us-west1"},
			never:   []string{"single GCP region", "acknowledgeCrossBorder", "us-central1"}},
		{name: "US stack acknowledging an EU DR region", values: and(us, "omscloud:dr", `{"region":"europe-west4","acknowledgeCrossBorder":true}`),
			key:     "omscloud:dr.region",
			mention: []string{"outside the jurisdiction of region us", "us-east4", "dr.acknowledgeCrossBorder applies only where the jurisdiction has a single GCP region"},
			never:   []string{"region us has a single GCP region"}},
		{name: "EU stack with a US DR region", values: with(map[string]string{"omscloud:dr": `{"region":"us-east4"}`}),
			key:     "omscloud:dr.region",
			mention: []string{"outside the jurisdiction of region eu", "must stay in EU", "europe-west4 (the catalog's DR region", "europe-west3"},
			never:   []string{"single GCP region", "europe-west1,"}},
		{name: "SG stack, cross-border DR not acknowledged", values: with(sg),
			key:     "omscloud:dr.acknowledgeCrossBorder",
			mention: []string{"region sg has a single GCP region, so its DR site asia-southeast2 lies in ID", "set dr.acknowledgeCrossBorder to true"}},
		{name: "SG stack, cross-border DR acknowledged", values: with(and(sg, "omscloud:dr", `{"acknowledgeCrossBorder":true}`))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := tc.values
			if values["omscloud:environment"] == "" {
				values = with(values)
			}
			_, err := ParseConfig("prod", values, nil)
			if tc.key == "" {
				require.NoError(t, err)
				return
			}
			got := problems(t, err)
			var dr []string
			for k := range got {
				if strings.HasPrefix(k, "omscloud:dr") {
					dr = append(dr, k)
				}
			}
			assert.Equal(t, []string{tc.key}, dr, "one DR problem, under the key to change")
			for _, m := range tc.mention {
				assert.Contains(t, got[tc.key], m)
			}
			for _, n := range tc.never {
				for k, p := range got {
					assert.NotContains(t, p, n, "%s claims what is not true of the stack", k)
				}
			}
		})
	}
}
