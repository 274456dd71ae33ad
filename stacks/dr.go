package stacks

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/components/restore"
	"github.com/omscloud/omscloud/regions"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// DR spin-up: stack "<primary>-dr" declares the primary's full environment in the primary's DR region, sized like
// production, from the primary's config (its Pulumi.<primary>.yaml) and its last state (read through a
// StackReference: backup bucket, accounts, release, reserved DR address, certificate map). Nothing of it exists
// until DR is declared; `omsctl dr activate` creates it.

// DRSuffix turns a primary stack's name into its DR stack's name.
const DRSuffix = "-dr"

// DRNamespace holds the DR stack's own settings. They live outside the omscloud namespace so that the DR stack's
// omscloud config stays exactly the primary's.
const DRNamespace = "omscloud-dr"

// DR settings (DRNamespace:<key>). omsctl derives them on every run from the DR stack's state, so a re-run declares
// exactly what is there.
const (
	// DRKeyRestore is the number of the restore run the DR stack declares: empty or 0 declares no restore Job. The
	// Job of run n, "<prefix>-restore-<n>", is created once and never run again (its spec is ignored afterwards): omsctl
	// dr activate declares run 1 in a new DR generation, keeps the number on a re-run, and raises it only with
	// --force-restore.
	DRKeyRestore = "restore"
	// DRKeyForceRestore "true" makes the restore run pass --force: restore over a database that has taken writes
	// since its last restore.
	DRKeyForceRestore = "forceRestore"
	// DRKeyFailback is the number of the failback backup run: its Job writes an archive of the DR databases and media
	// into the primary's backup bucket with the primary's key (omsctl dr deactivate).
	DRKeyFailback = "failback"
	// DRKeyTeardown "true" releases everything the teardown deletes (deletion protection off, buckets emptied on
	// delete), before omsctl dr deactivate destroys the stack.
	DRKeyTeardown = "teardown"
	// DRKeyPrimaryRef overrides the fully qualified name of the primary stack (default organization/omscloud/<primary>,
	// the name on a self-managed backend).
	DRKeyPrimaryRef = "primaryStackRef"
)

// Outputs of the DR stack omsctl reads.
const (
	OutputRestoreRun    = "restoreRun"
	OutputFailbackRun   = "failbackRun"
	OutputDRGeneration  = "generation"
	OutputDatabase      = "databaseInstance"
	OutputPrimaryBackup = "primaryBackupUrl"
)

// Outputs of the primary stack the DR spin-up reads.
const (
	OutputBackupURL       = "backupUrl"
	OutputBackupKeySecret = "backupKeySecretId"
	OutputAccounts        = "accounts"
	// OutputAccountCells places each account on its database cell; only stacks with database.cells export it.
	OutputAccountCells   = "accountCells"
	OutputRuntimeImage   = "runtimeImage"
	OutputDRAddress      = "drIpAddress"
	OutputDRTunnelToken  = "drTunnelToken"
	OutputCertificateMap = "certificateMap"
)

// DRStackName is the name of a primary stack's DR stack.
func DRStackName(primary string) string { return primary + DRSuffix }

// PrimaryRef is the fully qualified name of a primary stack on a self-managed (file, gs://) backend.
func PrimaryRef(primary string) string {
	if strings.Contains(primary, "/") {
		return primary
	}
	return "organization/" + Project + "/" + primary
}

// PrimaryOutputs is what the DR environment takes from the primary's last state.
type PrimaryOutputs struct {
	// BackupURL ("gs://<bucket>") holds the backups the restore Job reads (outside the primary region, in the
	// jurisdiction).
	BackupURL string
	// KeySecretID is the Secret Manager secret of the archive key, replicated to the DR region.
	KeySecretID string
	// Accounts are the accounts the primary hosted at its last update.
	Accounts []string
	// AccountCells are those accounts' cells (account → cell); nil when the primary had no database cells then.
	AccountCells map[string]string
	// RuntimeImage is the release (image by digest) the primary ran; empty when the primary does not export it yet.
	RuntimeImage string
	// DRAddress is the reserved DR IP address customers whitelist; empty for stacks without one.
	DRAddress string
	// CertificateMap is the primary GCP edge's Certificate Manager map (global): the DR load balancer serves it.
	CertificateMap string
}

// DRConfigFor turns a primary's validated config into its DR environment's: the same sizes, accounts, release and
// settings in the DR site — region, zones (as many as the primary uses) and Cloud SQL backup location — with DR
// disabled (a DR environment has no DR of its own) and every name prefixed "<prefix>-dr". The primary's config is
// not modified.
func DRConfigFor(primary *Config) (*Config, error) {
	if primary == nil {
		return nil, errors.New("DR config: no primary config")
	}
	if primary.Environment != Production || !primary.DR.Enabled {
		return nil, fmt.Errorf("stack %s has no cold DR site (environment %s, dr.enabled %t): only production stacks with DR enabled can be recovered",
			primary.Stack, primary.Environment, primary.DR.Enabled)
	}
	site := primary.Region.DR
	if primary.DR.GCPRegion != site.GCPRegion {
		return nil, fmt.Errorf("stack %s: omscloud:dr.region %q overrides the catalog's DR region %s, but the catalog has no zones for it: add the site to regions/ first",
			primary.Stack, primary.DR.GCPRegion, site.GCPRegion)
	}
	if len(site.Zones) < 2 {
		return nil, fmt.Errorf("DR site %s of region %s lists %d zone(s): the catalog must give at least 2", site.GCPRegion, primary.RegionID, len(site.Zones))
	}

	dr := *primary
	dr.Stack = DRStackName(primary.Stack)
	// NamePrefix derives every physical name from RegionID: "oms-prod-eu" becomes "oms-prod-eu-dr" (≤ 20
	// characters for every catalog region), so no DR name can collide with a primary name in the same project.
	dr.RegionID = primary.RegionID + DRSuffix
	dr.Region = primary.Region
	dr.Region.Primary = regions.Site{GCPRegion: site.GCPRegion, Zones: slices.Clone(site.Zones)}
	dr.Region.DR = regions.Site{}
	dr.Zones = slices.Clone(site.Zones[:min(len(primary.Zones), len(site.Zones))])
	dr.DR = DRConfig{}
	// The primary's pinned backup location is the primary's: the DR environment's own bucket takes its default.
	dr.Backup = BackupConfig{}
	dr.Accounts = slices.Clone(primary.Accounts)
	dr.Database.RetiredAccounts = slices.Clone(primary.Database.RetiredAccounts)
	// Every cell has its DR counterpart, "<prefix>-dr-<cell>", holding the same accounts.
	dr.Database.Cells = slices.Clone(primary.Database.Cells)
	dr.Database.Placement = maps.Clone(primary.Database.Placement)
	for cell, accounts := range dr.Database.Placement {
		dr.Database.Placement[cell] = slices.Clone(accounts)
	}
	// A move in progress or recorded is the primary's: the DR environment declares each account on its placement
	// cell only — no empty database prepared for a move, no retired copy left behind by one.
	dr.Database.Moving, dr.Database.Moved = nil, nil
	// Backups of the DR database must not land in the region that was lost.
	if dr.Database.BackupLocation == primary.Region.Primary.GCPRegion {
		dr.Database.BackupLocation = site.GCPRegion
	}
	dr.Edge.Hostnames = slices.Clone(primary.Edge.Hostnames)
	dr.GKE.MasterAuthorizedNetworks = slices.Clone(primary.GKE.MasterAuthorizedNetworks)
	dr.Maintenance.Days = slices.Clone(primary.Maintenance.Days)
	dr.Labels = maps.Clone(primary.Labels)
	if dr.Labels == nil {
		dr.Labels = map[string]string{}
	}
	dr.Labels["dr-of"] = labelUnsafe.ReplaceAllString(strings.ToLower(primary.Stack), "-")
	if n := len(dr.NamePrefix()); n > 20 {
		return nil, fmt.Errorf("DR name prefix %q is %d characters: at most 20 fit every GCP name; shorten the tenant name", dr.NamePrefix(), n)
	}
	return &dr, nil
}

// applyPrimaryOutputs takes the accounts, their cells and the release from the primary's last state: they are what
// customers were using when the region was lost, even if the stack file has moved on since. The restored registry
// finds each account on the cell it had.
func applyPrimaryOutputs(cfg *Config, out PrimaryOutputs) error {
	if len(out.Accounts) > 0 {
		cfg.Accounts = slices.Clone(out.Accounts)
	}
	if out.RuntimeImage != "" {
		cfg.Runtime.Image = out.RuntimeImage
	}
	if len(cfg.Database.Cells) == 0 {
		return nil
	}
	declared, configCell := map[string]bool{}, map[string]string{}
	for _, c := range cfg.Database.Cells {
		declared[c.Name] = true
	}
	for cell, accounts := range cfg.Database.Placement {
		for _, a := range accounts {
			configCell[a] = cell
		}
	}
	placement := map[string][]string{}
	for _, a := range cfg.Accounts {
		cell := configCell[a]
		if len(out.Accounts) > 0 {
			// A state without accountCells predates the cells: every account was on the one instance, cell main.
			cell = cmp.Or(out.AccountCells[a], postgres.MainCell)
		}
		if !declared[cell] {
			return fmt.Errorf("DR: the primary's last state places account %s on cell %s, which its config no longer declares in omscloud:database.cells: run `pulumi up` on the primary first",
				a, cell)
		}
		placement[cell] = append(placement[cell], a)
	}
	// Retired accounts are not in the state's outputs: their databases are where the config places them.
	for _, a := range cfg.Database.RetiredAccounts {
		if !slices.Contains(cfg.Accounts, a) {
			placement[configCell[a]] = append(placement[configCell[a]], a)
		}
	}
	cfg.Database.Placement = placement
	return nil
}

// drSettings are the DR stack's own settings (DRNamespace).
type drSettings struct {
	restore, failback      int
	forceRestore, teardown bool
}

func readDRSettings(ctx *pulumi.Context) (drSettings, error) {
	var s drSettings
	for _, n := range []struct {
		key string
		v   *int
	}{{DRKeyRestore, &s.restore}, {DRKeyFailback, &s.failback}} {
		v, _ := ctx.GetConfig(DRNamespace + ":" + n.key)
		if v == "" {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return s, fmt.Errorf("%s:%s is %q: want a run number (0 = none); omsctl dr activate and deactivate set it", DRNamespace, n.key, v)
		}
		*n.v = i
	}
	force, _ := ctx.GetConfig(DRNamespace + ":" + DRKeyForceRestore)
	teardown, _ := ctx.GetConfig(DRNamespace + ":" + DRKeyTeardown)
	s.forceRestore, s.teardown = force == "true", teardown == "true"
	return s, nil
}

// DRProgram is the program of stack "<primaryStack>-dr". Its omscloud config is the primary's; primaryStack is the
// primary's short name (or a fully qualified one).
func DRProgram(primaryStack string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		values, secretKeys, err := ConfigFromContext(ctx)
		if err != nil {
			return err
		}
		primaryCfg, err := ParseConfig(primaryStack, values, secretKeys)
		if err != nil {
			return fmt.Errorf("DR of %s: the primary's config: %w", primaryStack, err)
		}
		cfg, err := DRConfigFor(primaryCfg)
		if err != nil {
			return err
		}
		settings, err := readDRSettings(ctx)
		if err != nil {
			return err
		}
		if settings.teardown {
			// Everything goes but the KMS keys, which GCP cannot delete and the next activation adopts.
			cfg.DeletionProtection = false
		}
		ref, _ := ctx.GetConfig(DRNamespace + ":" + DRKeyPrimaryRef)
		if ref == "" {
			ref = PrimaryRef(primaryStack)
		}
		primary, err := pulumi.NewStackReference(ctx, "primary", &pulumi.StackReferenceArgs{Name: pulumi.String(ref)})
		if err != nil {
			return fmt.Errorf("DR of %s: reference the primary stack %s: %w", primaryStack, ref, err)
		}
		out, err := readPrimaryOutputs(primary, ref)
		if err != nil {
			return err
		}
		if err := applyPrimaryOutputs(cfg, out); err != nil {
			return err
		}

		// The DR edge answers on the address customers whitelisted in advance with the primary's certificates (gcp),
		// or runs the connector of the DR tunnel the primary declared in advance (cloudflare): the primary keeps
		// owning DNS, the certificates and the Cloudflare load balancer.
		// A generation names each cell's Cloud SQL instance: Cloud SQL keeps a deleted instance's name for up to a
		// week, so each activation after a teardown needs a new one. It lives exactly as long as its instance
		// (destroyed after it), so a re-run keeps the instance, and a cell added or removed has its own.
		suffixes := map[string]pulumi.StringInput{}
		var generation pulumi.StringOutput
		for _, cell := range cfg.cells() {
			id, err := random.NewRandomId(ctx, postgres.CellName(cfg.NamePrefix(), cell.Name)+"-generation", &random.RandomIdArgs{ByteLength: pulumi.Int(3)})
			if err != nil {
				return fmt.Errorf("DR generation of cell %s: %w", cell.Name, err)
			}
			suffixes[cell.Name] = id.Hex
			if cell.Name == postgres.MainCell {
				generation = id.Hex
			}
		}
		ov := Overrides{EdgeAddress: out.DRAddress, CertificateMap: out.CertificateMap, DatabaseSuffixes: suffixes,
			AdoptKeys: true, Teardown: settings.teardown}
		switch {
		case cfg.Edge.Provider == edge.Cloudflare:
			ov.TunnelToken = primary.GetStringOutput(pulumi.String(OutputDRTunnelToken))
		case out.CertificateMap == "":
			return fmt.Errorf("the primary stack %s exports no %s: its edge predates Certificate Manager, and the DR load balancer would serve no certificate. Run `pulumi up` on %s first",
				ref, OutputCertificateMap, primaryStack)
		}
		dep, err := Deploy(ctx, cfg, ov)
		if err != nil {
			return err
		}
		env := dep.Environment

		ctx.Export("primaryStack", pulumi.String(ref))
		ctx.Export(OutputPrimaryBackup, pulumi.String(out.BackupURL))
		ctx.Export(OutputDRGeneration, generation)
		ctx.Export(OutputDatabase, env.Database.InstanceName)
		ctx.Export(OutputDRAddress, pulumi.String(out.DRAddress))
		ctx.Export(OutputRuntimeImage, pulumi.String(cfg.Runtime.Image))
		ctx.Export("domain", pulumi.String(cfg.Edge.Domain))
		runs, err := restore.New(ctx, cfg.NamePrefix()+"-restore", &restore.Args{
			Name:         cfg.NamePrefix(),
			Project:      cfg.Project,
			BackupURL:    out.BackupURL,
			KeySecretID:  out.KeySecretID,
			Image:        cfg.Runtime.Image,
			Runtime:      env.Runtime.Wiring,
			Identity:     restore.Identity{KSA: env.Backup.ServiceAccountName, Email: env.Backup.ServiceAccountEmail},
			MediaURL:     env.Backup.MediaURL,
			Restore:      settings.restore,
			ForceRestore: settings.forceRestore,
			Failback:     settings.failback,
			Environment:  env,
		}, pulumi.Providers(dep.GCPProvider, env.Cluster.Provider))
		if err != nil {
			return fmt.Errorf("DR: %w", err)
		}
		ctx.Export(OutputRestoreRun, pulumi.Int(settings.restore))
		ctx.Export(OutputFailbackRun, pulumi.Int(settings.failback))
		if settings.restore > 0 {
			ctx.Export("restoreJob", runs.RestoreJob)
		}
		if settings.failback > 0 {
			ctx.Export("failbackJob", runs.FailbackJob)
		}
		return nil
	}
}

func readPrimaryOutputs(ref *pulumi.StackReference, name string) (PrimaryOutputs, error) {
	get := func(key string) (any, error) {
		d, err := ref.GetOutputDetails(key)
		if err != nil {
			return nil, fmt.Errorf("DR: read output %s of the primary stack %s: %w", key, name, err)
		}
		if d.Value != nil {
			return d.Value, nil
		}
		return d.SecretValue, nil
	}
	var out PrimaryOutputs
	v, err := get(OutputBackupURL)
	if err != nil {
		return out, err
	}
	out.BackupURL, _ = v.(string)
	if !strings.HasPrefix(out.BackupURL, "gs://") {
		return out, fmt.Errorf("the primary stack %s exports no %s: there is nothing to restore from. Check that the primary was deployed with its backups (pulumi up on %s) and that --backend points at its state",
			name, OutputBackupURL, name)
	}
	if v, err = get(OutputBackupKeySecret); err != nil {
		return out, err
	}
	if out.KeySecretID, _ = v.(string); out.KeySecretID == "" {
		return out, fmt.Errorf("the primary stack %s exports no %s: the archives cannot be decrypted without it", name, OutputBackupKeySecret)
	}
	if v, err = get(OutputAccounts); err != nil {
		return out, err
	}
	if list, ok := v.([]any); ok {
		for _, a := range list {
			if s, ok := a.(string); ok {
				out.Accounts = append(out.Accounts, s)
			}
		}
	}
	if v, err = get(OutputAccountCells); err != nil {
		return out, err
	}
	if m, ok := v.(map[string]any); ok {
		out.AccountCells = map[string]string{}
		for a, cell := range m {
			out.AccountCells[a], _ = cell.(string)
		}
	}
	if v, err = get(OutputRuntimeImage); err != nil {
		return out, err
	}
	out.RuntimeImage, _ = v.(string)
	if v, err = get(OutputDRAddress); err != nil {
		return out, err
	}
	out.DRAddress, _ = v.(string)
	if v, err = get(OutputCertificateMap); err != nil {
		return out, err
	}
	out.CertificateMap, _ = v.(string)
	return out, nil
}
