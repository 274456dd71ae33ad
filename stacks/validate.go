package stacks

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/mail"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/regions"
)

var (
	projectIDPattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	tenantPattern       = regexp.MustCompile(`^[a-z][a-z0-9-]{0,10}[a-z0-9]$`)
	accountPattern      = regexp.MustCompile(`^[a-z][a-z0-9-]{2,30}$`)
	machineTypePattern  = regexp.MustCompile(`^[a-z][a-z0-9]*-[a-z0-9-]+$`)
	dbTierPattern       = regexp.MustCompile(`^db-(custom-[0-9]+-[0-9]+|[a-z0-9-]+)$`)
	hostnamePattern     = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	cloudflareIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	digestPattern       = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	labelKeyPattern     = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValuePattern   = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
	dnsZonePattern      = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	secretNamePattern   = regexp.MustCompile(`(?i)(password|passwd|secret|token|apikey|api_key|credential|privatekey|private_key)`)
)

var weekdays = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

func (c *Config) validate(v *validator) {
	region, err := regions.Get(c.RegionID)
	regionOK := err == nil
	switch {
	case c.RegionID == "":
		v.add("region", "is required: one of %s", strings.Join(regions.IDs(), ", "))
	case !regionOK:
		v.add("region", "%v", err)
	default:
		c.Region = region
	}

	if c.Project == "" {
		v.add("project", "is required: the GCP project id the stack deploys into")
	} else if !projectIDPattern.MatchString(c.Project) {
		v.add("project", "%q is not a GCP project id (6-30 characters: lowercase letters, digits, hyphens; starts with a letter)", c.Project)
	}

	c.validateTenancy(v)
	c.validateAccounts(v)
	if regionOK {
		c.validateZones(v)
		c.validateDR(v)
	}
	if regionOK {
		c.validateBackup(v)
	}
	c.validateNetwork(v)
	c.validateGKE(v)
	c.validateSizing(v)
	c.validateDatabase(v, regionOK)
	c.validateEdge(v)
	c.validateObservability(v)
	c.validateRuntime(v)
	c.validateMaintenance(v)
	for _, r := range []struct {
		key string
		n   int
	}{{"rotation.database", c.Rotation.Database}, {"rotation.redis", c.Rotation.Redis}, {"rotation.rabbitmq", c.Rotation.RabbitMQ}} {
		if r.n < 0 {
			v.add(r.key, "is %d: count rotations from 0, and raise it by 1 to rotate", r.n)
		}
	}
	validateLabels(v, c.Labels)
	c.validatePlaceholders(v)

	if c.Environment == Production && !c.DeletionProtection {
		v.add("deletionProtection", "production stacks keep deletion protection on; remove the setting (to tear a production stack down, turn protection off in a reviewed change of its own)")
	}
}

func (c *Config) validateTenancy(v *validator) {
	switch c.Tenancy {
	case Shared:
		if c.Tenant != "" {
			v.add("tenant", "is set on a shared stack: set tenancy to dedicated, or remove tenant")
		}
	case Dedicated:
		if c.Tenant == "" {
			v.add("tenant", "is required when tenancy is dedicated: the customer's short name, e.g. acme")
		} else if !tenantPattern.MatchString(c.Tenant) {
			v.add("tenant", "%q is not a valid tenant name: 2-12 lowercase letters, digits or hyphens, starting with a letter", c.Tenant)
		}
		if len(c.Accounts) == 0 {
			v.add("accounts", "a dedicated stack hosts its tenant's accounts: list at least one account id")
		}
	default:
		v.add("tenancy", "%q is not a tenancy: use shared or dedicated", c.Tenancy)
	}
}

func (c *Config) validateAccounts(v *validator) {
	seen := map[string]bool{}
	for i, a := range c.Accounts {
		field := fmt.Sprintf("accounts[%d]", i)
		switch {
		case !accountPattern.MatchString(a):
			v.add(field, "%q is not a valid account id: 3-31 characters, lowercase letters, digits and hyphens, starting with a letter", a)
		case seen[a]:
			v.add(field, "%q is listed twice: each account has exactly one database", a)
		}
		seen[a] = true
	}
}

func (c *Config) validateZones(v *validator) {
	if len(c.Zones) == 0 {
		c.Zones = slices.Clone(c.Region.Primary.Zones[:min(defaultZoneCount, len(c.Region.Primary.Zones))])
	}
	valid := strings.Join(c.Region.Primary.Zones, ", ")
	seen := map[string]bool{}
	for i, z := range c.Zones {
		switch {
		case !c.Region.Primary.HasZone(z):
			v.add(fmt.Sprintf("zones[%d]", i), "%q is not a zone of %s (%s): use one of %s", z, c.RegionID, c.Region.Primary.GCPRegion, valid)
		case seen[z]:
			v.add(fmt.Sprintf("zones[%d]", i), "%q is listed twice", z)
		}
		seen[z] = true
	}
	if len(c.Zones) < 2 {
		v.add("zones", "%s needs at least 2 zones so web nodes and database replicas survive a zone outage, got %d; list at least 2 of %s (or remove the setting for the default %d)",
			c.Environment, len(c.Zones), valid, defaultZoneCount)
	}
}

func (c *Config) validateDR(v *validator) {
	if c.DR.GCPRegion == "" {
		if c.DR.Enabled || c.Environment == Production {
			c.DR.GCPRegion = c.Region.DR.GCPRegion
		}
	} else {
		j, known := regions.JurisdictionOf(c.DR.GCPRegion)
		switch {
		case !known:
			v.add("dr.region", "%q is not a GCP region omscloud knows: use one of %s", c.DR.GCPRegion, strings.Join(regions.KnownGCPRegions(), ", "))
		case c.DR.GCPRegion == c.Region.Primary.GCPRegion:
			v.add("dr.region", "%q is the primary region: DR must survive the loss of %s, use %s", c.DR.GCPRegion, c.DR.GCPRegion, c.Region.DR.GCPRegion)
		case j != c.Region.Jurisdiction && !c.Region.DRCrossBorder:
			v.add("dr.region", "%s", c.drOutsideJurisdiction(j))
		}
	}
	if !c.DR.Enabled {
		if c.DR.Active {
			v.add("dr.active", "is true but dr.enabled is false: there is no DR site to switch to")
		}
		return
	}
	// Only where the jurisdiction has a single GCP region may the DR site lie across the border (the catalog marks it
	// DRCrossBorder); elsewhere dr.region is refused above, and acknowledging would change nothing.
	if j, _ := regions.JurisdictionOf(c.DR.GCPRegion); j != "" && j != c.Region.Jurisdiction && c.Region.DRCrossBorder && !c.DR.AcknowledgeCrossBorder {
		v.add("dr.acknowledgeCrossBorder", "region %s has a single GCP region, so its DR site %s lies in %s: set dr.acknowledgeCrossBorder to true once the customer has agreed, or set dr.enabled to false",
			c.RegionID, c.DR.GCPRegion, j)
	}
}

// drOutsideJurisdiction is the problem of a dr.region in jurisdiction j, outside the stack's, where the jurisdiction
// has other GCP regions to recover in: which ones.
func (c *Config) drOutsideJurisdiction(j string) string {
	var others []string
	for _, r := range regions.GCPRegionsIn(c.Region.Jurisdiction) {
		if r != c.Region.Primary.GCPRegion && r != c.Region.DR.GCPRegion {
			others = append(others, r)
		}
	}
	msg := fmt.Sprintf("%q lies in %s, outside the jurisdiction of region %s: its data must stay in %s. Pick a DR region in %s: %s (the catalog's DR region: remove dr.region to use it)",
		c.DR.GCPRegion, j, c.RegionID, c.Region.Jurisdiction, c.Region.Jurisdiction, c.Region.DR.GCPRegion)
	if len(others) > 0 {
		msg += " or one of " + strings.Join(others, ", ")
	}
	if c.DR.AcknowledgeCrossBorder {
		msg += "; dr.acknowledgeCrossBorder applies only where the jurisdiction has a single GCP region"
	}
	return msg
}

func (c *Config) validateBackup(v *validator) {
	if c.Backup.Location == "" {
		if len(c.Backup.DataLocations) > 0 {
			v.add("backup.dataLocations", "is set without backup.location: give the dual-region's multi-region code (EU, US, ASIA) as backup.location")
		}
		return
	}
	bucket, _, keepInRegion := c.backupPlacement()
	a := backup.Args{Region: c.Region.Primary.GCPRegion, DRRegion: c.DR.GCPRegion, KeepInRegion: keepInRegion,
		AllowCrossBorder: c.Region.DRCrossBorder && c.DR.AcknowledgeCrossBorder, Bucket: bucket}
	if err := a.CheckBucketLocation(); err != nil {
		v.add("backup.location", "%q: %v", c.Backup.Location, err)
	}
}

func (c *Config) validateNetwork(v *validator) {
	n := c.Network
	ranges := []struct{ field, cidr string }{
		{"network.subnetCidr", n.SubnetCIDR}, {"network.podsCidr", n.PodsCIDR}, {"network.servicesCidr", n.ServicesCIDR},
		{"network.masterCidr", n.MasterCIDR}, {"network.privateServicesCidr", n.PrivateServicesCIDR},
	}
	var parsed []netip.Prefix
	var names []string
	for _, r := range ranges {
		p, err := netip.ParsePrefix(r.cidr)
		if err != nil || !p.Addr().Is4() || p.Masked() != p || !p.Addr().IsPrivate() {
			v.add(r.field, "%q is not a private IPv4 CIDR block in canonical form (e.g. 10.10.0.0/20)", r.cidr)
			continue
		}
		for i, q := range parsed {
			if p.Overlaps(q) {
				v.add(r.field, "%s overlaps %s (%s): the ranges must be disjoint", r.cidr, names[i], q)
			}
		}
		parsed, names = append(parsed, p), append(names, r.field)
	}
	if p, err := netip.ParsePrefix(n.MasterCIDR); err == nil && p.Bits() != 28 {
		v.add("network.masterCidr", "%q must be a /28: GKE peers its control plane into exactly 16 addresses", n.MasterCIDR)
	}
	if p, err := netip.ParsePrefix(n.PrivateServicesCIDR); err == nil && p.Bits() > 24 {
		v.add("network.privateServicesCidr", "%q is smaller than a /24: Cloud SQL private services access needs at least a /24", n.PrivateServicesCIDR)
	}
}

func (c *Config) validateGKE(v *validator) {
	if !slices.Contains([]string{"RAPID", "REGULAR", "STABLE"}, c.GKE.ReleaseChannel) {
		v.add("gke.releaseChannel", "%q is not a release channel: use RAPID, REGULAR or STABLE", c.GKE.ReleaseChannel)
	}
	for i, n := range c.GKE.MasterAuthorizedNetworks {
		if p, err := netip.ParsePrefix(n.CIDR); err != nil || p.Masked() != p {
			v.add(fmt.Sprintf("gke.masterAuthorizedNetworks[%d].cidr", i), "%q is not a CIDR block in canonical form", n.CIDR)
		}
		if n.Name == "" {
			v.add(fmt.Sprintf("gke.masterAuthorizedNetworks[%d].name", i), "is required: say whose network this is")
		}
	}
}

func (c *Config) validateSizing(v *validator) {
	for _, p := range []struct {
		field    string
		size     NodePoolSize
		minNodes int
	}{{"sizing.web", c.Sizing.Web, 1}, {"sizing.stateful", c.Sizing.Stateful, 1}} {
		if !machineTypePattern.MatchString(p.size.MachineType) {
			v.add(p.field+".machineType", "%q is not a GCE machine type (e.g. e2-standard-4)", p.size.MachineType)
		}
		if p.size.MinNodesPerZone < p.minNodes {
			v.add(p.field+".minNodesPerZone", "is %d: at least %d node per zone keeps a replica in every zone", p.size.MinNodesPerZone, p.minNodes)
		}
		if p.size.MaxNodesPerZone < p.size.MinNodesPerZone {
			v.add(p.field+".maxNodesPerZone", "is %d, below minNodesPerZone %d", p.size.MaxNodesPerZone, p.size.MinNodesPerZone)
		}
		if p.size.MaxNodesPerZone > 100 {
			v.add(p.field+".maxNodesPerZone", "is %d: GKE allows at most 100 nodes per zone in a pool here; split the load", p.size.MaxNodesPerZone)
		}
		if p.size.DiskSizeGB < 20 {
			v.add(p.field+".diskSizeGb", "is %d: node boot disks need at least 20 GB", p.size.DiskSizeGB)
		}
	}
	if !dbTierPattern.MatchString(c.Sizing.Database.Tier) {
		v.add("sizing.database.tier", "%q is not a Cloud SQL tier (e.g. db-custom-4-16384)", c.Sizing.Database.Tier)
	}
	if c.Sizing.Database.DiskSizeGB < 10 {
		v.add("sizing.database.diskSizeGb", "is %d: Cloud SQL needs at least 10 GB", c.Sizing.Database.DiskSizeGB)
	}
}

var (
	quantityPattern        = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$`)
	postgresVersionPattern = regexp.MustCompile(`^POSTGRES_1[4-7]$`)
)

func (c *Config) validateDatabase(v *validator, regionOK bool) {
	d := &c.Database
	if !postgresVersionPattern.MatchString(d.Version) {
		v.add("database.version", "%q is not a supported Cloud SQL version: use POSTGRES_14 ... POSTGRES_17 (default POSTGRES_16)", d.Version)
	}
	switch {
	case d.Availability != "REGIONAL" && d.Availability != "ZONAL":
		v.add("database.availability", "%q: use REGIONAL (standby in another zone, automatic failover) or ZONAL", d.Availability)
	case d.Availability == "ZONAL" && c.Environment == Production:
		v.add("database.availability", "production needs REGIONAL: a primary in one zone and a standby in another with automatic failover; remove the setting")
	}
	if d.BackupLocation == "" && regionOK {
		d.BackupLocation = c.Region.StorageLocation
	}
	if d.RetainedBackups < 7 || d.RetainedBackups > 365 {
		v.add("database.retainedBackups", "is %d: keep between 7 and 365 automated backups", d.RetainedBackups)
	}
	accounts := map[string]bool{}
	for _, a := range c.Accounts {
		accounts[a] = true
	}
	for i, a := range d.RetiredAccounts {
		field := fmt.Sprintf("database.retiredAccounts[%d]", i)
		switch {
		case !accountPattern.MatchString(a):
			v.add(field, "%q is not a valid account id", a)
		case accounts[a]:
			v.add(field, "%q is also in accounts: an account is either active or retired, remove it from one list", a)
		}
	}
	c.validateCells(v)
	for _, w := range []struct {
		field string
		size  WorkloadSize
	}{{"sizing.redis", c.Sizing.Redis}, {"sizing.rabbitmq", c.Sizing.RabbitMQ}} {
		if !quantityPattern.MatchString(w.size.CPU) {
			v.add(w.field+".cpu", "%q is not a Kubernetes CPU quantity (e.g. 500m or 2)", w.size.CPU)
		}
		if !quantityPattern.MatchString(w.size.Memory) {
			v.add(w.field+".memory", "%q is not a Kubernetes memory quantity (e.g. 4Gi)", w.size.Memory)
		}
		if w.size.StorageGB < 1 {
			v.add(w.field+".storageGb", "is %d: each replica needs a persistent volume of at least 1 GB", w.size.StorageGB)
		}
	}
}

// cellNamePattern keeps the names derived from a cell's unambiguous: without a hyphen, "<prefix>-<cell>-…" never
// reads as another cell's names, and 9 characters fit the postgres component's 30-character Name after any prefix.
var cellNamePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,8}$`)

// reservedCells would name a cell's resources like others of the project: why, with the stack's name prefix.
var reservedCells = map[string]string{
	"dr": "the DR environment's resources are named %s-dr-…",
	"db": "the accounts' password secrets are named %s-db-<account>",
}

// validateCells checks database.cells, database.defaultCell (defaulting it) and database.placement.
func (c *Config) validateCells(v *validator) {
	d := &c.Database
	prefix := c.NamePrefix()
	if len(d.Cells) == 0 {
		if len(d.Placement) > 0 {
			v.add("database.placement", "is set without database.cells: every account is on the environment's one instance; declare the cells first, e.g. database: {cells: [{name: main}, {name: b}]} (README, \"Adding a cell and placing an account\")")
		}
		if d.DefaultCell != "" {
			v.add("database.defaultCell", "is set without database.cells: the environment's one instance takes every new account; remove it")
		}
		const noCells = "is set without database.cells: an account moves between cells, and the environment has one instance; declare the cells first (README, \"Adding a cell and placing an account\"), or remove it"
		if len(d.Moving) > 0 {
			v.add("database.moving", noCells)
		}
		if len(d.Moved) > 0 {
			v.add("database.moved", noCells)
		}
		return
	}
	declared := map[string]bool{}
	var names []string
	for i, cell := range d.Cells {
		field := fmt.Sprintf("database.cells[%d]", i)
		why, reserved := reservedCells[cell.Name]
		switch {
		case cell.Name == "":
			v.add(field+".name", "is required: name the cell, e.g. b")
		case !cellNamePattern.MatchString(cell.Name):
			v.add(field+".name", "%q is not a cell name: 1-9 lowercase letters and digits, starting with a letter (it names the cell's instance, %s-<cell>-pg)", cell.Name, prefix)
		case reserved:
			v.add(field+".name", "%q is reserved: "+why+"; pick another name", cell.Name, prefix)
		case declared[cell.Name]:
			v.add(field+".name", "%q is listed twice: each cell is one Cloud SQL instance: merge the two entries", cell.Name)
		default:
			names = append(names, cell.Name)
		}
		declared[cell.Name] = true
		if cell.Tier != "" && !dbTierPattern.MatchString(cell.Tier) {
			v.add(field+".tier", "%q is not a Cloud SQL tier (e.g. db-custom-8-32768): remove it to use sizing.database.tier (%s)", cell.Tier, c.Sizing.Database.Tier)
		}
		if cell.DiskSizeGB != 0 && cell.DiskSizeGB < 10 {
			v.add(field+".diskSizeGb", "is %d: Cloud SQL needs at least 10 GB; remove it to use sizing.database.diskSizeGb (%d)", cell.DiskSizeGB, c.Sizing.Database.DiskSizeGB)
		}
	}
	if !declared[postgres.MainCell] {
		v.add("database.cells", "has no cell %q: main is the environment's first instance (%s), which holds the runtime's control database and every account placed before cells existed; add {name: main} to the list",
			postgres.MainCell, postgres.InstanceName(prefix))
	}
	known := strings.Join(names, ", ")
	switch {
	case d.DefaultCell == "":
		d.DefaultCell = postgres.MainCell
	case !declared[d.DefaultCell]:
		v.add("database.defaultCell", "%q is not in database.cells (%s): the accounts the runtime creates would have no instance; name one of them, or remove the setting for main", d.DefaultCell, known)
	}
	placedIn := c.validatePlacement(v, declared, known)
	c.validateMoves(v, declared, known, placedIn)
}

// validateMoves checks database.moving and database.moved against the placement (README, "Moving an account to
// another cell"): an active account moves to another declared cell, and a moved account has left a declared cell
// other than the one it is placed on; one move at a time.
func (c *Config) validateMoves(v *validator, declared map[string]bool, known string, placedIn map[string]string) {
	d := &c.Database
	for _, a := range slices.Sorted(maps.Keys(d.Moving)) {
		to, key := d.Moving[a], "database.moving."+a
		_, moved := d.Moved[a]
		switch {
		case !accountPattern.MatchString(a):
			v.add(key, "%q is not a valid account id: 3-31 characters, lowercase letters, digits and hyphens, starting with a letter", a)
		case slices.Contains(d.RetiredAccounts, a):
			v.add(key, "%q is in database.retiredAccounts: a retired account is not moved, its database is deleted once you remove it; remove the entry", a)
		case !slices.Contains(c.Accounts, a):
			v.add(key, "%q is not in accounts: only an active account moves; remove the entry, or fix the id", a)
		case moved:
			v.add(key, "%q is also in database.moved: one move at a time: remove its database.moved entry (the copy it left on cell %s is deleted) and `pulumi up` first, then prepare the next move", a, d.Moved[a])
		case !declared[to]:
			v.add(key, "cell %q is not in database.cells (%s): name the cell the account moves to", to, known)
		case placedIn[a] == to:
			v.add(key, "%q is already placed on cell %s: a move goes to another cell; name it, or remove the entry. After `oms account move`, record the move: place the account on %s, and replace this entry with database: {moved: {%s: <the cell it left>}}", a, to, to, a)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(d.Moved)) {
		from, key := d.Moved[a], "database.moved."+a
		_, placed := placedIn[a]
		switch {
		case !accountPattern.MatchString(a):
			v.add(key, "%q is not a valid account id: 3-31 characters, lowercase letters, digits and hyphens, starting with a letter", a)
		case !placed && !slices.Contains(c.Accounts, a) && !slices.Contains(d.RetiredAccounts, a):
			// A hosted account without a placement is reported by validatePlacement.
			v.add(key, "%q is placed on no cell: it is in neither accounts nor database.retiredAccounts; database.moved keeps the copy a placed account left behind: remove the entry", a)
		case !declared[from]:
			v.add(key, "cell %q is not in database.cells (%s): name the cell the account left, whose copy is retired until you remove the entry", from, known)
		case placedIn[a] == from:
			v.add(key, "%q is placed on cell %s, the cell it left: place it in database.placement on the cell it moved to (the registry's, after `oms account move`); if it has not moved, remove the entry", a, from)
		}
	}
}

// validatePlacement checks that database.placement puts every account the stack hosts, active or retired, on
// exactly one declared cell, and nothing else; it returns the cell of each account placed (account → cell).
func (c *Config) validatePlacement(v *validator, declared map[string]bool, known string) map[string]string {
	d := &c.Database
	example := postgres.MainCell
	if declared[d.DefaultCell] {
		example = d.DefaultCell
	}
	// hosted names where the stack lists each account it hosts; every one is placed explicitly.
	hosted := map[string]string{}
	var order []string
	for i, a := range c.Accounts {
		if hosted[a] == "" {
			hosted[a] = fmt.Sprintf("accounts[%d]", i)
			order = append(order, a)
		}
	}
	for i, a := range d.RetiredAccounts {
		if hosted[a] == "" {
			hosted[a] = fmt.Sprintf("database.retiredAccounts[%d]", i)
			order = append(order, a)
		}
	}
	placedIn := map[string]string{}
	for _, cell := range slices.Sorted(maps.Keys(d.Placement)) {
		accounts := d.Placement[cell]
		switch {
		case declared[cell]:
		case len(accounts) == 0:
			v.add("database.placement."+cell, "cell %q is not in database.cells (%s): remove the entry", cell, known)
		default:
			v.add("database.placement."+cell, "cell %q is not in database.cells (%s). If you removed cell %s, its accounts' databases are still on it: put it back in database.cells (to empty a cell, move its accounts first: README, \"Moving an account to another cell\"); if the name is a typo, list its accounts (%s) under a cell of database.cells",
				cell, known, cell, strings.Join(accounts, ", "))
		}
		for i, a := range accounts {
			field := fmt.Sprintf("database.placement.%s[%d]", cell, i)
			switch {
			case !accountPattern.MatchString(a):
				v.add(field, "%q is not a valid account id: 3-31 characters, lowercase letters, digits and hyphens, starting with a letter", a)
			case placedIn[a] == cell:
				v.add(field, "%q is listed twice: remove one", a)
			case placedIn[a] != "":
				v.add(field, "%q is also placed in cell %s: its database is on exactly one cell: remove it from the cell that does not hold it", a, placedIn[a])
			case hosted[a] == "":
				v.add(field, "%q is in neither accounts nor database.retiredAccounts: remove it from the placement, or add it to accounts", a)
			}
			if placedIn[a] == "" {
				placedIn[a] = cell
			}
		}
	}
	for _, a := range order {
		if placedIn[a] == "" && accountPattern.MatchString(a) {
			v.add("database.placement", "account %q (%s) is in no cell: list it under the cell that holds its database, e.g. database: {placement: {%s: [..., %s]}}. Accounts are never moved by default: database.defaultCell places only the accounts the runtime creates itself, so that neither changing it nor emptying a cell's list points an account at an instance without its data",
				a, hosted[a], example, a)
		}
	}
	return placedIn
}

func (c *Config) validateEdge(v *validator) {
	e := &c.Edge
	switch e.Provider {
	case edge.GCP:
		c.validateEdgeDNS(v)
	case edge.Cloudflare:
		if e.DNS != (EdgeDNSConfig{}) {
			v.add("edge.dns", "is set with edge.provider cloudflare, whose records live in the Cloudflare zone (edge.cloudflare.zoneId): remove it")
		}
		if !cloudflareIDPattern.MatchString(e.Cloudflare.AccountID) {
			v.add("edge.cloudflare.accountId", "%q is not a Cloudflare account id (32 hex characters, from the dashboard's overview page)", e.Cloudflare.AccountID)
		}
		if !cloudflareIDPattern.MatchString(e.Cloudflare.ZoneID) {
			v.add("edge.cloudflare.zoneId", "%q is not a Cloudflare zone id (32 hex characters)", e.Cloudflare.ZoneID)
		}
	default:
		v.add("edge.provider", "%q is not an edge: use gcp (HTTPS load balancer + Cloud Armor) or cloudflare (Zero Trust tunnel)", e.Provider)
	}
	if !hostnamePattern.MatchString(e.Domain) {
		v.add("edge.domain", "%q is not a DNS name (e.g. oms.example.com)", e.Domain)
	}
	if len(e.Hostnames) == 0 && e.Domain != "" {
		e.Hostnames = []string{e.Domain}
	}
	for i, h := range e.Hostnames {
		if !hostnamePattern.MatchString(h) {
			v.add(fmt.Sprintf("edge.hostnames[%d]", i), "%q is not a DNS name", h)
		}
	}
}

// validateEdgeDNS checks the Cloud DNS zone of the gcp edge: it serves the hostnames and authorizes their certificates.
func (c *Config) validateEdgeDNS(v *validator) {
	d := c.Edge.DNS
	switch {
	case d.ManagedZone == "":
		v.add("edge.dns.managedZone", "is required with edge.provider gcp: the Cloud DNS managed zone serving %s, by its name (`gcloud dns managed-zones list --project %s`), e.g. edge: {dns: {managedZone: omscloud-example-com}}; omscloud writes the hostnames' A records and their certificates' DNS authorizations there",
			c.Edge.Domain, c.Project)
	case !dnsZonePattern.MatchString(d.ManagedZone):
		v.add("edge.dns.managedZone", "%q is not a Cloud DNS zone name: 1-63 lowercase letters, digits and hyphens, starting with a letter (the zone's name, not its DNS name)", d.ManagedZone)
	}
	if d.Project != "" && !projectIDPattern.MatchString(d.Project) {
		v.add("edge.dns.project", "%q is not a GCP project id: give the project holding the zone, or remove the setting when it is %s", d.Project, c.Project)
	}
}

func (c *Config) validateRuntime(v *validator) {
	r := c.Runtime
	switch {
	case r.Image == "":
		v.add("runtime.image", "is required: the OMS runtime image, e.g. europe-docker.pkg.dev/p/oms/oms@sha256:<digest>")
	case strings.ContainsAny(r.Image, " \t"):
		v.add("runtime.image", "%q contains white space", r.Image)
	case c.Environment == Production && !digestPattern.MatchString(r.Image):
		v.add("runtime.image", "%q is not pinned by digest: production runs exactly the release that was tested, use image@sha256:<digest>", r.Image)
	}
	if r.ActiveColor != "blue" && r.ActiveColor != "green" {
		v.add("runtime.activeColor", "%q is not a color: use blue or green", r.ActiveColor)
	}
	for color, image := range r.ColorImages {
		switch {
		case color != "blue" && color != "green":
			v.add("runtime.colorImages."+color, "is not a color: use blue or green")
		case c.Environment == Production && !digestPattern.MatchString(image):
			v.add("runtime.colorImages."+color, "%q is not pinned by digest: use image@sha256:<digest>", image)
		}
	}
	// The nodes are granted read on the repositories these images name, so each must be in Artifact Registry.
	for _, img := range r.images() {
		if _, err := gke.ImageRepository(img.image); err != nil {
			v.add(img.key, "%v", err)
		}
	}
}

func (c *Config) validateMaintenance(v *validator) {
	m := c.Maintenance
	seen := map[string]bool{}
	for i, d := range m.Days {
		if !slices.Contains(weekdays, d) {
			v.add(fmt.Sprintf("maintenance.days[%d]", i), "%q is not a weekday: use monday ... sunday", d)
		} else if seen[d] {
			v.add(fmt.Sprintf("maintenance.days[%d]", i), "%q is listed twice", d)
		}
		seen[d] = true
	}
	if len(m.Days) == 0 {
		v.add("maintenance.days", "is empty: list the weekdays on which maintenance may run, e.g. [saturday, sunday]")
	}
	if m.StartHourUTC < 0 || m.StartHourUTC > 23 {
		v.add("maintenance.startHourUtc", "is %d: use an hour from 0 to 23", m.StartHourUTC)
	}
	if m.DurationHours < 4 || m.DurationHours > 24 {
		v.add("maintenance.durationHours", "is %d: GKE needs windows of 4 to 24 hours", m.DurationHours)
	} else if hours := len(m.Days) * m.DurationHours * 32 / 7; len(m.Days) > 0 && hours < 48 {
		v.add("maintenance.durationHours", "gives about %d hours in 32 days: GKE requires at least 48, so add days or lengthen the window", hours)
	}
}

func validateLabels(v *validator, labels map[string]string) {
	if len(labels) > 60 {
		v.add("labels", "has %d labels: GCP allows 64 per resource and omscloud adds its own, keep to 60", len(labels))
	}
	for k, val := range labels {
		if !labelKeyPattern.MatchString(k) {
			v.add("labels."+k, "is not a valid GCP label key: lowercase letters, digits, _ and -, starting with a letter, at most 63")
		}
		if !labelValuePattern.MatchString(val) {
			v.add("labels."+k, "value %q is not a valid GCP label value: lowercase letters, digits, _ and -, at most 63", val)
		}
	}
}

// checkPlaintextSecrets refuses secret-looking settings given in plain text, in any namespace and at any depth of a
// structured value. The value itself is never echoed.
func checkPlaintextSecrets(v *validator, values map[string]string, secret map[string]bool) {
	for k, raw := range values {
		if secret[k] {
			continue
		}
		ns, name, _ := strings.Cut(k, ":")
		if slices.Contains(ProviderSecretKeys, k) || secretNamePattern.MatchString(name) {
			v.add(k, "holds a secret in plain text: remove it from the stack file and set it with `pulumi config set --secret %s`", k)
			continue
		}
		if ns != Namespace {
			continue
		}
		var doc any
		if json.Unmarshal([]byte(raw), &doc) != nil {
			continue
		}
		for _, path := range secretPaths(doc, name) {
			v.add(Namespace+":"+path, "holds a secret in plain text: set it with `pulumi config set --secret --path '%s:%s'`", Namespace, path)
		}
	}
}

func secretPaths(doc any, prefix string) []string {
	var out []string
	switch d := doc.(type) {
	case map[string]any:
		for k, val := range d {
			p := prefix + "." + k
			if _, isString := val.(string); isString && secretNamePattern.MatchString(k) {
				out = append(out, p)
				continue
			}
			out = append(out, secretPaths(val, p)...)
		}
	case []any:
		for i, val := range d {
			out = append(out, secretPaths(val, fmt.Sprintf("%s[%d]", prefix, i))...)
		}
	}
	return out
}

// minProductionAvailability is the uptime the platform promises (DESIGN.md): a production objective below it would
// let the promise break without a page.
const minProductionAvailability = 99.95

func (c *Config) validateObservability(v *validator) {
	o := c.Observability
	switch {
	case o.AvailabilityObjective < 90 || o.AvailabilityObjective >= 100:
		v.add("observability.availabilityObjective", "is %v: give a percentage in [90, 100), e.g. 99.95", o.AvailabilityObjective)
	case c.Environment == Production && o.AvailabilityObjective < minProductionAvailability:
		v.add("observability.availabilityObjective", "is %v: production promises %v%% uptime; remove the setting or raise it", o.AvailabilityObjective, minProductionAvailability)
	}
	if o.LatencyObjective < 90 || o.LatencyObjective >= 100 {
		v.add("observability.latencyObjective", "is %v: give a percentage in [90, 100), e.g. 99", o.LatencyObjective)
	}
	var buckets []string
	found := false
	for _, b := range rules.Buckets {
		ms := b * 1000
		buckets = append(buckets, fmt.Sprint(ms))
		found = found || float64(o.LatencyThresholdMs) == ms
	}
	if !found {
		v.add("observability.latencyThresholdMs", "is %d: use a boundary of the runtime's latency histogram: %s", o.LatencyThresholdMs, strings.Join(buckets, ", "))
	}
	if o.BackupMaxAgeMinutes < 70 {
		v.add("observability.backupMaxAgeMinutes", "is %d: hourly backups run once an hour and take minutes, use at least 70 (default %d)",
			o.BackupMaxAgeMinutes, int(rules.Production().BackupMaxAge.Minutes()))
	}
	if len(o.UptimeRegions) < 3 {
		v.add("observability.uptimeRegions", "lists %d region(s): Cloud Monitoring needs at least 3, e.g. [USA, EUROPE, ASIA_PACIFIC]", len(o.UptimeRegions))
	}
	for i, r := range o.UptimeRegions {
		if !slices.Contains(observability.UptimeRegions, r) {
			v.add(fmt.Sprintf("observability.uptimeRegions[%d]", i), "%q is not an uptime check region: use %s", r, strings.Join(observability.UptimeRegions, ", "))
		}
	}
	n := o.Notifications
	for i, e := range n.Emails {
		if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e {
			v.add(fmt.Sprintf("observability.notifications.emails[%d]", i), "%q is not an email address", e)
		}
	}
	if (n.SlackChannel == "") != (n.SlackToken == "") {
		v.add("observability.notifications.slackChannel", "and slackToken go together: set both (the token with `pulumi config set --secret --path`) or neither")
	}
}
