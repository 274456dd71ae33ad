package stacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/regions"
)

// Namespace is the Pulumi config namespace of every omscloud key.
const Namespace = "omscloud"

// Environment classes. Production and sandbox share one topology; they differ in size and protection.
const (
	Production = "production"
	Sandbox    = "sandbox"
)

// Tenancy modes.
const (
	Shared    = "shared"
	Dedicated = "dedicated"
)

// Config is one stack's typed configuration: one environment class in one region.
type Config struct {
	Stack       string `json:"-"`
	Environment string `json:"environment"`
	RegionID    string `json:"region"`
	// Region is the catalog entry for RegionID, resolved by ParseConfig.
	Region  regions.Region `json:"-"`
	Project string         `json:"project"`
	Tenancy string         `json:"tenancy"`
	// Tenant names the customer of a dedicated stack.
	Tenant string `json:"tenant"`
	// Accounts are the ids of the accounts whose isolated databases this stack hosts.
	Accounts           []string            `json:"accounts"`
	Zones              []string            `json:"zones"`
	Network            NetworkConfig       `json:"network"`
	GKE                GKEConfig           `json:"gke"`
	Sizing             Sizing              `json:"sizing"`
	Database           DatabaseConfig      `json:"database"`
	Edge               EdgeConfig          `json:"edge"`
	Runtime            RuntimeConfig       `json:"runtime"`
	DR                 DRConfig            `json:"dr"`
	Backup             BackupConfig        `json:"backup"`
	Maintenance        Maintenance         `json:"maintenance"`
	Rotation           Rotation            `json:"rotation"`
	Observability      ObservabilityConfig `json:"observability"`
	Labels             map[string]string   `json:"labels"`
	DeletionProtection bool                `json:"deletionProtection"`
}

// NetworkConfig holds the VPC's address plan.
type NetworkConfig struct {
	SubnetCIDR   string `json:"subnetCidr"`
	PodsCIDR     string `json:"podsCidr"`
	ServicesCIDR string `json:"servicesCidr"`
	// MasterCIDR is the /28 the GKE control plane peers into.
	MasterCIDR string `json:"masterCidr"`
	// PrivateServicesCIDR is reserved for Cloud SQL's private IP (private services access).
	PrivateServicesCIDR string `json:"privateServicesCidr"`
	FlowLogs            bool   `json:"flowLogs"`
}

// GKEConfig holds cluster settings that are not sizes.
type GKEConfig struct {
	ReleaseChannel string `json:"releaseChannel"`
	// MasterAuthorizedNetworks may reach the control plane's public endpoint (e.g. the CI runners' egress).
	MasterAuthorizedNetworks []AuthorizedNetwork `json:"masterAuthorizedNetworks"`
}

// AuthorizedNetwork is a CIDR allowed to reach the GKE control plane.
type AuthorizedNetwork struct {
	Name string `json:"name"`
	CIDR string `json:"cidr"`
}

// Sizing holds every size knob of the environment.
type Sizing struct {
	Web      NodePoolSize `json:"web"`
	Stateful NodePoolSize `json:"stateful"`
	Database DatabaseSize `json:"database"`
	Redis    WorkloadSize `json:"redis"`
	RabbitMQ WorkloadSize `json:"rabbitmq"`
}

// WorkloadSize sizes each replica of a stateful workload on GKE (Kubernetes quantities).
type WorkloadSize struct {
	CPU       string `json:"cpu"`
	Memory    string `json:"memory"`
	StorageGB int    `json:"storageGb"`
}

// DatabaseConfig configures Cloud SQL beyond its size.
type DatabaseConfig struct {
	// Version is the Cloud SQL engine version, e.g. POSTGRES_16.
	Version string `json:"version"`
	// Availability is REGIONAL (a standby in another zone, automatic failover) or ZONAL (sandbox only).
	Availability string `json:"availability"`
	// BackupLocation keeps automated backups in the jurisdiction; defaults to the region's storage location.
	BackupLocation  string `json:"backupLocation"`
	RetainedBackups int    `json:"retainedBackups"`
	// RetiredAccounts are accounts being removed: still declared, but no longer protected from deletion. Remove an
	// account in two reviewed steps — move it here, `pulumi up`, then delete it from this list — so that no edit
	// to the accounts list alone can drop a customer's database.
	RetiredAccounts []string `json:"retiredAccounts"`
	// Cells are the environment's Cloud SQL instances when it has more than one (README, "Adding a cell and placing
	// an account"); unset, the environment has one instance, cell main, which hosts every account. Cell main is
	// that first instance: it keeps its names and the runtime's control database, wherever it is in the list.
	Cells []DatabaseCell `json:"cells"`
	// Placement lists each cell's accounts (cell → account ids), active and retired. With cells every account is
	// placed explicitly: none ever falls to a default, so that no edit of the default or of another cell's list
	// points an account at an instance without its data.
	Placement map[string][]string `json:"placement"`
	// DefaultCell is the cell of the accounts the runtime creates itself (default main, with cells).
	DefaultCell string `json:"defaultCell"`
	// Moving prepares moves (account → the cell it moves to; README, "Moving an account to another cell"): the
	// account stays placed where it is, and its database, user and password secret are also declared on the target
	// cell, exactly as placing it there would declare them, for `oms account move` to copy into.
	Moving map[string]string `json:"moving"`
	// Moved records finished moves (account → the cell it left), once placement has the account on its new cell:
	// the database, user and password secret it left behind stay declared on the old cell, retired (unprotected).
	// Removing the entry deletes them, as removing a retired account does.
	Moved map[string]string `json:"moved"`
}

// DatabaseCell is one Cloud SQL instance of database.cells; unset sizes are sizing.database's.
type DatabaseCell struct {
	Name       string `json:"name"`
	Tier       string `json:"tier"`
	DiskSizeGB int    `json:"diskSizeGb"`
	// LogicalDecoding sets the Cloud SQL flag cloudsql.logical_decoding=on on the cell's instance, which an account
	// moving away from it needs (README, "Moving an account to another cell"); changing it restarts the instance.
	LogicalDecoding bool `json:"logicalDecoding"`
}

// Cell is one Cloud SQL instance of the environment with the accounts it hosts, after defaults and placement: the
// one table the database builders, the DR spin-up and the runtime's wiring read.
type Cell struct {
	Name string
	Size DatabaseSize
	// LogicalDecoding is database.cells[].logicalDecoding.
	LogicalDecoding bool
	// Accounts and RetiredAccounts placed on the cell, in the order of accounts and database.retiredAccounts;
	// RetiredAccounts then has the accounts that moved away from the cell (database.moved), in the same order.
	Accounts, RetiredAccounts []string
	// Incoming are the accounts moving onto the cell (database.moving), in the order of accounts: declared there like
	// Accounts, but placed, for the runtime's wiring, on the cell they are still on.
	Incoming []string
}

// cells are the environment's Cloud SQL instances, main first, then in the order of database.cells. Without
// database.cells it is main alone, hosting every account. Valid configs only: every account is placed.
func (c *Config) cells() []Cell {
	if len(c.Database.Cells) == 0 {
		return []Cell{{Name: postgres.MainCell, Size: c.Sizing.Database,
			Accounts: slices.Clone(c.Accounts), RetiredAccounts: slices.Clone(c.Database.RetiredAccounts)}}
	}
	cellOf := map[string]string{}
	for cell, accounts := range c.Database.Placement {
		for _, a := range accounts {
			cellOf[a] = cell
		}
	}
	var out []Cell
	for _, dc := range c.Database.Cells {
		cell := Cell{Name: dc.Name, Size: c.Sizing.Database, LogicalDecoding: dc.LogicalDecoding}
		if dc.Tier != "" {
			cell.Size.Tier = dc.Tier
		}
		if dc.DiskSizeGB != 0 {
			cell.Size.DiskSizeGB = dc.DiskSizeGB
		}
		for _, a := range c.Accounts {
			if cellOf[a] == dc.Name {
				cell.Accounts = append(cell.Accounts, a)
			}
		}
		for _, a := range c.Database.RetiredAccounts {
			if cellOf[a] == dc.Name {
				cell.RetiredAccounts = append(cell.RetiredAccounts, a)
			}
		}
		for _, a := range slices.Concat(c.Accounts, c.Database.RetiredAccounts) {
			if from, ok := c.Database.Moved[a]; ok && from == dc.Name && !slices.Contains(cell.RetiredAccounts, a) {
				cell.RetiredAccounts = append(cell.RetiredAccounts, a)
			}
		}
		for _, a := range c.Accounts {
			if to, ok := c.Database.Moving[a]; ok && to == dc.Name {
				cell.Incoming = append(cell.Incoming, a)
			}
		}
		if dc.Name == postgres.MainCell {
			out = append([]Cell{cell}, out...)
		} else {
			out = append(out, cell)
		}
	}
	return out
}

// accountCells places each active account on its cell (account → cell); nil without database.cells. The stack
// exports it, and the DR spin-up places the accounts as the primary's last state did.
func (c *Config) accountCells() map[string]string {
	if len(c.Database.Cells) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, cell := range c.cells() {
		for _, a := range cell.Accounts {
			out[a] = cell.Name
		}
	}
	return out
}

// cellNames are the names of cells(), main first.
func (c *Config) cellNames() []string {
	var out []string
	for _, cell := range c.cells() {
		out = append(out, cell.Name)
	}
	return out
}

// NodePoolSize bounds a node pool's autoscaling, per zone.
type NodePoolSize struct {
	MachineType     string `json:"machineType"`
	MinNodesPerZone int    `json:"minNodesPerZone"`
	MaxNodesPerZone int    `json:"maxNodesPerZone"`
	DiskSizeGB      int    `json:"diskSizeGb"`
}

// DatabaseSize sizes the Cloud SQL instance.
type DatabaseSize struct {
	Tier       string `json:"tier"`
	DiskSizeGB int    `json:"diskSizeGb"`
}

// EdgeConfig selects how traffic reaches the runtime.
type EdgeConfig struct {
	Provider string `json:"provider"`
	Domain   string `json:"domain"`
	// Hostnames served; defaults to Domain.
	Hostnames  []string         `json:"hostnames"`
	Cloudflare CloudflareConfig `json:"cloudflare"`
	// DNS is the Cloud DNS zone of the gcp edge's records (required with provider gcp).
	DNS EdgeDNSConfig `json:"dns"`
}

// EdgeDNSConfig names the Cloud DNS managed zone where the gcp edge writes the hostnames' A records and the CNAMEs
// that authorize their certificates.
type EdgeDNSConfig struct {
	// ManagedZone is the zone's name ("omscloud-example-com"), not its DNS name.
	ManagedZone string `json:"managedZone"`
	// Project holds the zone, when it is not the stack's project (a shared DNS project).
	Project string `json:"project"`
}

// CloudflareConfig identifies the Cloudflare account and zone of the edge.
type CloudflareConfig struct {
	AccountID string `json:"accountId"`
	ZoneID    string `json:"zoneId"`
}

// RuntimeConfig selects the OMS release and its active blue-green color.
type RuntimeConfig struct {
	Image       string `json:"image"`
	ActiveColor string `json:"activeColor"`
	// ColorImages stages another release on one color ("green": "...@sha256:...") before switching to it.
	ColorImages map[string]string `json:"colorImages"`
}

// keyedImage is one image the runtime runs, with the key that sets it.
type keyedImage struct{ key, image string }

// images lists every image the stack runs from its own release: runtime.image, then runtime.colorImages.<color> by
// color. Validation and the nodes' pull grants both read this one list.
func (r RuntimeConfig) images() []keyedImage {
	var out []keyedImage
	if r.Image != "" {
		out = append(out, keyedImage{"runtime.image", r.Image})
	}
	for _, color := range slices.Sorted(maps.Keys(r.ColorImages)) {
		out = append(out, keyedImage{"runtime.colorImages." + color, r.ColorImages[color]})
	}
	return out
}

// BackupConfig pins the backup bucket's location. By default it follows dr.enabled (the DR region, or the
// jurisdiction's multi-region without DR), but a bucket's location can never change: a stack whose dr.enabled is
// toggled keeps its bucket where it is by pinning it here (`omsctl dr enable|disable` does).
type BackupConfig struct {
	// Location is the backup bucket's location: a region, a multi-region ("eu"), a predefined dual-region ("eur4"),
	// or with DataLocations a custom dual-region's multi-region code.
	Location      string   `json:"location" yaml:"location"`
	DataLocations []string `json:"dataLocations" yaml:"dataLocations,omitempty"`
}

// DRConfig configures the cold disaster-recovery site.
type DRConfig struct {
	Enabled bool `json:"enabled"`
	// GCPRegion overrides the catalog's DR region; it must stay in the jurisdiction.
	GCPRegion string `json:"region"`
	// AcknowledgeCrossBorder must be true where the DR site lies outside the jurisdiction.
	AcknowledgeCrossBorder bool `json:"acknowledgeCrossBorder"`
	// Active declares DR: with a Cloudflare edge it enables the pre-declared DR pool, with a GCP edge it points the
	// hostnames' A records at the reserved DR address, so traffic moves to the DR environment. `omsctl dr activate
	// --switch` sets it; failback clears it.
	Active bool `json:"active"`
}

// ObservabilityConfig sets the objectives, the uptime checks and where alerts go (components/observability).
type ObservabilityConfig struct {
	// AvailabilityObjective is the percentage of API requests that must not fail with a 5xx, over 30 days.
	AvailabilityObjective float64 `json:"availabilityObjective"`
	// LatencyObjective is the percentage of order creates and availability calls faster than LatencyThresholdMs.
	LatencyObjective   float64 `json:"latencyObjective"`
	LatencyThresholdMs int     `json:"latencyThresholdMs"`
	// BackupMaxAgeMinutes is the age of the newest hourly backup that pages.
	BackupMaxAgeMinutes int `json:"backupMaxAgeMinutes"`
	// UptimeRegions are where the uptime checks run from (at least 3; default USA, EUROPE, ASIA_PACIFIC).
	UptimeRegions []string            `json:"uptimeRegions"`
	Notifications NotificationsConfig `json:"notifications"`
}

// NotificationsConfig names the alert channels. Pages go to every channel, tickets to email and Slack.
type NotificationsConfig struct {
	Emails       []string `json:"emails"`
	SlackChannel string   `json:"slackChannel"`
	// SlackToken and PagerDutyToken (a PagerDuty Events v2 integration key) are secrets: set them with
	// `pulumi config set --secret --path 'omscloud:observability.notifications.pagerdutyToken'`.
	SlackToken     string `json:"slackToken"`
	PagerDutyToken string `json:"pagerdutyToken"`
}

// thresholds are the alert rules' parameters of the stack: its class's defaults with the stack's objectives.
func (c *Config) thresholds() rules.Params {
	p := rules.Production()
	if c.Environment == Sandbox {
		p = rules.Sandbox()
	}
	o := c.Observability
	p.AvailabilityObjective, p.LatencyObjective = o.AvailabilityObjective/100, o.LatencyObjective/100
	p.LatencyThreshold = time.Duration(o.LatencyThresholdMs) * time.Millisecond
	p.BackupMaxAge = time.Duration(o.BackupMaxAgeMinutes) * time.Minute
	// Only a REGIONAL instance has a standby to fail over to; only a production stack with DR has a DR site.
	p.Regional = c.Database.Availability == "REGIONAL"
	p.Cells = len(c.cells()) > 1
	p.DR = c.Environment == Production && c.DR.Enabled
	return p
}

// Maintenance is the weekly window in which GKE and Cloud SQL may disrupt.
type Maintenance struct {
	Days          []string `json:"days"`
	StartHourUTC  int      `json:"startHourUtc"`
	DurationHours int      `json:"durationHours"`
}

// Rotation counts the rotations of each generated credential, from 0: raise one by 1 and `pulumi up` to rotate it
// (README, "Rotating credentials").
type Rotation struct {
	// Database is the runtime's control-database login.
	Database int `json:"database"`
	// Redis is the clients' Redis and Sentinel password.
	Redis int `json:"redis"`
	// RabbitMQ is the application's AMQP credentials.
	RabbitMQ int `json:"rabbitmq"`
}

// retiredKeys were settings once; each says what to do instead, so an old stack file fails with a way forward.
var retiredKeys = map[string]string{
	"projectNumber": "is no longer a setting: the program looks the project's number and service agents up once their APIs are on; delete the key",
}

// ProviderSecretKeys are provider settings that must only ever be given as secrets.
var ProviderSecretKeys = []string{"gcp:credentials", "gcp:accessToken", "cloudflare:apiToken", "cloudflare:apiKey"}

// Defaults returns the configuration an environment class starts from before the stack's own values apply.
func Defaults(environment string) Config {
	c := Config{
		Environment: environment,
		Tenancy:     Shared,
		Network: NetworkConfig{
			SubnetCIDR: "10.10.0.0/20", PodsCIDR: "10.16.0.0/14", ServicesCIDR: "10.20.0.0/20",
			MasterCIDR: "172.16.0.0/28", PrivateServicesCIDR: "10.30.0.0/16",
		},
		GKE:         GKEConfig{ReleaseChannel: "REGULAR"},
		Edge:        EdgeConfig{Provider: edge.GCP},
		Runtime:     RuntimeConfig{ActiveColor: "blue"},
		Maintenance: Maintenance{Days: []string{"saturday", "sunday"}, StartHourUTC: 2, DurationHours: 6},
		Database:    DatabaseConfig{Version: "POSTGRES_16"},
	}
	thresholds := rules.Production()
	if environment == Sandbox {
		thresholds = rules.Sandbox()
	}
	// The objectives' defaults are the rules package's: one place says what production and sandbox promise.
	c.Observability = ObservabilityConfig{
		AvailabilityObjective: thresholds.AvailabilityObjective * 100,
		LatencyObjective:      thresholds.LatencyObjective * 100,
		LatencyThresholdMs:    int(thresholds.LatencyThreshold.Milliseconds()),
		BackupMaxAgeMinutes:   int(thresholds.BackupMaxAge.Minutes()),
		UptimeRegions:         slices.Clone(observability.DefaultUptimeRegions),
	}
	switch environment {
	case Sandbox:
		c.Sizing = Sizing{
			Web:      NodePoolSize{MachineType: "e2-standard-2", MinNodesPerZone: 1, MaxNodesPerZone: 2, DiskSizeGB: 50},
			Stateful: NodePoolSize{MachineType: "e2-standard-2", MinNodesPerZone: 1, MaxNodesPerZone: 1, DiskSizeGB: 50},
			Database: DatabaseSize{Tier: "db-custom-1-3840", DiskSizeGB: 20},
			Redis:    WorkloadSize{CPU: "250m", Memory: "512Mi", StorageGB: 5},
			RabbitMQ: WorkloadSize{CPU: "250m", Memory: "1Gi", StorageGB: 10},
		}
		c.GKE.ReleaseChannel = "REGULAR"
		// Documented trade-off: a sandbox database has no standby; its data is restorable from backups.
		c.Database.Availability = "ZONAL"
		c.Database.RetainedBackups = 7
	default:
		c.Sizing = Sizing{
			Web:      NodePoolSize{MachineType: "e2-standard-4", MinNodesPerZone: 1, MaxNodesPerZone: 5, DiskSizeGB: 100},
			Stateful: NodePoolSize{MachineType: "n2-standard-4", MinNodesPerZone: 1, MaxNodesPerZone: 2, DiskSizeGB: 100},
			Database: DatabaseSize{Tier: "db-custom-4-16384", DiskSizeGB: 100},
			Redis:    WorkloadSize{CPU: "1", Memory: "4Gi", StorageGB: 20},
			RabbitMQ: WorkloadSize{CPU: "1", Memory: "4Gi", StorageGB: 50},
		}
		c.GKE.ReleaseChannel = "STABLE"
		c.Database.Availability = "REGIONAL"
		c.Database.RetainedBackups = 30
		c.Network.FlowLogs = true
		c.DR.Enabled = true
		c.DeletionProtection = true
	}
	return c
}

// defaultZoneCount is how many of the region's zones a stack uses unless it lists its own.
const defaultZoneCount = 3

// ParseConfig turns a stack's flat config (keys "namespace:key", structured values as JSON, as Pulumi hands them to
// a program) into a validated Config. secretKeys names the keys that were given as secrets. Every problem is
// reported at once in a *ValidationError.
func ParseConfig(stack string, values map[string]string, secretKeys []string) (*Config, error) {
	v := &validator{stack: stack}
	secret := map[string]bool{}
	for _, k := range secretKeys {
		secret[k] = true
	}
	checkPlaintextSecrets(v, values, secret)

	env := values[key("environment")]
	switch env {
	case Production, Sandbox:
	case "":
		v.add("environment", "is required: set it to production or sandbox")
		env = Production
	default:
		v.add("environment", "%q is not an environment class: use production or sandbox", env)
		env = Production
	}
	c := Defaults(env)
	c.Stack = stack

	for _, k := range slices.Sorted(maps.Keys(values)) {
		ns, name, _ := strings.Cut(k, ":")
		if ns != Namespace {
			continue
		}
		if why, retired := retiredKeys[name]; retired {
			v.add(name, "%s", why)
			continue
		}
		if !slices.Contains(Keys, name) {
			v.add(name, "is not an omscloud setting%s; valid settings are %s", suggest(name, Keys), strings.Join(Keys, ", "))
			continue
		}
		if name == "environment" {
			continue
		}
		if err := decodeInto(&c, name, values[k]); err != nil {
			v.add(name, "%v", err)
		}
	}
	c.validate(v)
	if err := v.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

func key(name string) string { return Namespace + ":" + name }

// decodeInto overlays one key's value onto the defaulted config: objects merge field by field, lists replace.
func decodeInto(c *Config, name, raw string) error {
	switch {
	case structured(name):
	case keyKinds[name] == reflect.Bool:
		// Pulumi hands every scalar over as a string; only the two spellings a YAML boolean round-trips to count.
		if raw != "true" && raw != "false" {
			return fmt.Errorf("%q is not a boolean: use true or false", raw)
		}
	default:
		quoted, _ := json.Marshal(raw)
		raw = string(quoted)
	}
	// Decode the one field through a wrapper so the config's JSON tags apply.
	doc := []byte(`{"` + name + `":` + raw + `}`)
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("cannot be read: %s", describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s must be %s, not %s", te.Field, jsonKinds[te.Type.Kind().String()], te.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f + " (check the spelling against the README's config reference)"
	}
	return strings.TrimPrefix(msg, "json: ")
}

var jsonKinds = map[string]string{
	"int": "a whole number", "bool": "true or false", "string": "a string", "slice": "a list", "map": "an object",
	"struct": "an object",
}

// suggest offers the closest valid key for a likely typo.
func suggest(name string, valid []string) string {
	best, bestDist := "", 3
	for _, k := range valid {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// FieldError is one problem with one config key.
type FieldError struct {
	Key     string // "omscloud:sizing.web.minNodesPerZone"
	Problem string
}

// ValidationError lists every problem found in a stack's config.
type ValidationError struct {
	Stack  string
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stack %s: %d configuration problem(s):", e.Stack, len(e.Errors))
	for _, fe := range e.Errors {
		fmt.Fprintf(&b, "\n  - %s: %s", fe.Key, fe.Problem)
	}
	return b.String()
}

type validator struct {
	stack  string
	errors []FieldError
}

func (v *validator) add(field, format string, args ...any) {
	k := field
	if !strings.Contains(field, ":") {
		k = key(field)
	}
	v.errors = append(v.errors, FieldError{Key: k, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.errors) == 0 {
		return nil
	}
	sort.SliceStable(v.errors, func(i, j int) bool { return v.errors[i].Key < v.errors[j].Key })
	return &ValidationError{Stack: v.stack, Errors: v.errors}
}

// AlertParams are the alert rules' parameters of the deployed environment, selectors included: what the stack's
// alert policies evaluate, for tools that query its metrics (omsctl status).
func (c *Config) AlertParams() rules.Params {
	prefix := c.NamePrefix()
	return observability.ParamsOf(observability.Args{
		Name: prefix, Project: c.Project, Namespace: omsruntime.DefaultNamespace, Hostnames: c.Edge.Hostnames,
		DatabaseInstance: postgres.InstancePattern(prefix, c.cellNames()...), Thresholds: c.thresholds(),
	})
}
