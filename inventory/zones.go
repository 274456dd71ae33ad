package inventory

import (
	"fmt"
	"sort"
)

// ZoneRow is what one zone runs: node pool capacity and database roles.
type ZoneRow struct {
	Zone  string     `json:"zone"`
	Pools []PoolSpan `json:"pools,omitempty"`
	// Databases lists "<instance> primary|secondary" for Cloud SQL instances with a preference for this zone.
	Databases []string `json:"databases,omitempty"`
}

// PoolSpan is one node pool's autoscaling bounds in one zone.
type PoolSpan struct {
	Pool string `json:"pool"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
}

// Zones summarises the inventory per zone, sorted by zone.
func (inv *Inventory) Zones() []ZoneRow {
	rows := map[string]*ZoneRow{}
	row := func(z string) *ZoneRow {
		if rows[z] == nil {
			rows[z] = &ZoneRow{Zone: z}
		}
		return rows[z]
	}
	for _, p := range inv.OfType("gcp:container/nodePool:NodePool") {
		lo, _ := p.Number("autoscaling.minNodeCount")
		hi, _ := p.Number("autoscaling.maxNodeCount")
		for _, z := range p.Strings("nodeLocations") {
			r := row(z)
			r.Pools = append(r.Pools, PoolSpan{Pool: p.String("name"), Min: int(lo), Max: int(hi)})
		}
	}
	for _, db := range inv.OfType("gcp:sql/databaseInstance:DatabaseInstance") {
		if z := db.String("settings.locationPreference.zone"); z != "" {
			row(z).Databases = append(row(z).Databases, db.String("name")+" primary")
		}
		if z := db.String("settings.locationPreference.secondaryZone"); z != "" {
			row(z).Databases = append(row(z).Databases, db.String("name")+" secondary")
		}
	}
	out := make([]ZoneRow, 0, len(rows))
	for _, r := range rows {
		sort.Slice(r.Pools, func(i, j int) bool { return r.Pools[i].Pool < r.Pools[j].Pool })
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Zone < out[j].Zone })
	return out
}

func (p PoolSpan) String() string { return fmt.Sprintf("%s %d-%d", p.Pool, p.Min, p.Max) }
