// Package regions is the catalog of the regions omscloud serves: for each, the GCP region and zones that run it,
// the designated cold-DR site, and the jurisdiction its data must stay in. Adding a region is one catalog entry.
package regions

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Site is a GCP region and the zones omscloud uses in it, in preference order.
type Site struct {
	GCPRegion string
	Zones     []string
}

// Region is one catalog entry.
type Region struct {
	// ID is the short name used in stack config and stack names ("eu").
	ID   string
	Name string
	// Jurisdiction is the legal area customer data must stay in ("EU").
	Jurisdiction string
	Primary      Site
	// DR is where the environment is rebuilt from backups when the primary site is lost.
	DR Site
	// DRCrossBorder is true where the jurisdiction has a single GCP region, so the DR site necessarily lies
	// outside it; a stack in such a region must acknowledge that explicitly.
	DRCrossBorder bool
	// StorageLocation is the Cloud Storage / Cloud SQL backup location: inside the jurisdiction and, where the
	// jurisdiction has more than one region, outside the primary region's failure domain (a multi-region or the
	// DR region).
	StorageLocation string
}

// gcpJurisdictions maps the GCP regions omscloud may use to their jurisdiction. It is how a DR override in stack
// config is checked: a region missing here is refused rather than guessed.
var gcpJurisdictions = map[string]string{
	"australia-southeast1": "AU", "australia-southeast2": "AU",
	"us-central1": "US", "us-east1": "US", "us-east4": "US", "us-east5": "US", "us-south1": "US",
	"us-west1": "US", "us-west2": "US", "us-west3": "US", "us-west4": "US",
	"europe-west1": "EU", "europe-west3": "EU", "europe-west4": "EU", "europe-west8": "EU", "europe-west9": "EU",
	"europe-north1": "EU", "europe-southwest1": "EU", "europe-central2": "EU",
	"asia-southeast1": "SG", "asia-southeast2": "ID",
}

var catalog = []Region{
	{
		ID: "au", Name: "Australia", Jurisdiction: "AU",
		Primary:         Site{GCPRegion: "australia-southeast1", Zones: zones("australia-southeast1", "a", "b", "c")},
		DR:              Site{GCPRegion: "australia-southeast2", Zones: zones("australia-southeast2", "a", "b", "c")},
		StorageLocation: "australia-southeast2",
	},
	{
		ID: "us", Name: "United States", Jurisdiction: "US",
		Primary:         Site{GCPRegion: "us-central1", Zones: zones("us-central1", "a", "b", "c", "f")},
		DR:              Site{GCPRegion: "us-east4", Zones: zones("us-east4", "a", "b", "c")},
		StorageLocation: "us",
	},
	{
		ID: "eu", Name: "European Union", Jurisdiction: "EU",
		Primary:         Site{GCPRegion: "europe-west1", Zones: zones("europe-west1", "b", "c", "d")},
		DR:              Site{GCPRegion: "europe-west4", Zones: zones("europe-west4", "a", "b", "c")},
		StorageLocation: "eu",
	},
	{
		// Singapore has one GCP region: the nearest DR site is Jakarta, outside the jurisdiction.
		ID: "sg", Name: "Singapore", Jurisdiction: "SG",
		Primary:       Site{GCPRegion: "asia-southeast1", Zones: zones("asia-southeast1", "a", "b", "c")},
		DR:            Site{GCPRegion: "asia-southeast2", Zones: zones("asia-southeast2", "a", "b", "c")},
		DRCrossBorder: true,
		// Backups stay in Singapore; copies cross the border only once the stack acknowledges it for DR.
		StorageLocation: "asia-southeast1",
	},
}

func zones(region string, suffixes ...string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = region + "-" + s
	}
	return out
}

// All returns the catalog, sorted by ID. The slices are copies: callers cannot change the catalog.
func All() []Region {
	out := make([]Region, 0, len(catalog))
	for _, r := range catalog {
		out = append(out, r.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IDs lists the catalog's region IDs, sorted.
func IDs() []string {
	ids := make([]string, 0, len(catalog))
	for _, r := range catalog {
		ids = append(ids, r.ID)
	}
	sort.Strings(ids)
	return ids
}

// Get returns the region with the given ID, or an error that lists the valid ones.
func Get(id string) (Region, error) {
	for _, r := range catalog {
		if r.ID == id {
			return r.clone(), nil
		}
	}
	return Region{}, fmt.Errorf("unknown region %q: valid regions are %s", id, strings.Join(IDs(), ", "))
}

// JurisdictionOf returns the jurisdiction of a GCP region omscloud knows about.
func JurisdictionOf(gcpRegion string) (string, bool) {
	j, ok := gcpJurisdictions[gcpRegion]
	return j, ok
}

// KnownGCPRegions lists the GCP regions that JurisdictionOf knows, sorted.
func KnownGCPRegions() []string {
	out := make([]string, 0, len(gcpJurisdictions))
	for r := range gcpJurisdictions {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// GCPRegionsIn lists the GCP regions JurisdictionOf places in jurisdiction, sorted.
func GCPRegionsIn(jurisdiction string) []string {
	var out []string
	for r, j := range gcpJurisdictions {
		if j == jurisdiction {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// HasZone reports whether zone is one of the site's zones.
func (s Site) HasZone(zone string) bool { return slices.Contains(s.Zones, zone) }

func (r Region) clone() Region {
	r.Primary.Zones = slices.Clone(r.Primary.Zones)
	r.DR.Zones = slices.Clone(r.DR.Zones)
	return r
}

// Validate checks the rules every catalog entry must keep; the catalog's own test runs it on every entry.
func (r Region) Validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if r.ID == "" || strings.ToLower(r.ID) != r.ID {
		add("ID %q must be non-empty lowercase", r.ID)
	}
	for _, site := range []struct {
		name string
		s    Site
	}{{"primary", r.Primary}, {"DR", r.DR}} {
		if len(site.s.Zones) < 3 {
			add("%s site %s has %d zones; at least 3 are required", site.name, site.s.GCPRegion, len(site.s.Zones))
		}
		for _, z := range site.s.Zones {
			if !strings.HasPrefix(z, site.s.GCPRegion+"-") {
				add("%s zone %s is not in %s", site.name, z, site.s.GCPRegion)
			}
		}
		if j, ok := gcpJurisdictions[site.s.GCPRegion]; !ok {
			add("%s GCP region %s has no known jurisdiction", site.name, site.s.GCPRegion)
		} else if site.name == "primary" && j != r.Jurisdiction {
			add("primary GCP region %s is in %s, not %s", site.s.GCPRegion, j, r.Jurisdiction)
		}
	}
	if r.DR.GCPRegion == r.Primary.GCPRegion {
		add("DR site must be another GCP region than the primary (%s)", r.Primary.GCPRegion)
	}
	drJ := gcpJurisdictions[r.DR.GCPRegion]
	switch {
	case drJ != r.Jurisdiction && !r.DRCrossBorder:
		add("DR region %s is in %s, outside %s; mark DRCrossBorder only where %s has a single GCP region",
			r.DR.GCPRegion, drJ, r.Jurisdiction, r.Jurisdiction)
	case drJ == r.Jurisdiction && r.DRCrossBorder:
		add("DRCrossBorder is set but DR region %s is inside %s", r.DR.GCPRegion, r.Jurisdiction)
	}
	if r.StorageLocation == "" {
		add("StorageLocation is required")
	}
	if len(errs) > 0 {
		return fmt.Errorf("region %s: %s", r.ID, strings.Join(errs, "; "))
	}
	return nil
}
