package policy

import (
	"slices"

	"github.com/omscloud/omscloud/inventory"
)

const sqlInstanceType = "gcp:sql/databaseInstance:DatabaseInstance"

// minLogRetentionDays is how far back point-in-time recovery must reach.
const minLogRetentionDays = 7

// defaultLogRetentionDays is what Cloud SQL for PostgreSQL keeps when transactionLogRetentionDays is not set.
const defaultLogRetentionDays = 7

// isReplica reports whether an instance is a read replica: replicas take HA and backups from their primary.
func isReplica(r inventory.Resource) bool {
	return known(r.String("masterInstanceName")) || known(r.String("instanceType")) && r.String("instanceType") != "CLOUD_SQL_INSTANCE"
}

func postgresHA() Policy {
	return Policy{
		Name: "postgres-ha",
		Description: "production Cloud SQL is REGIONAL with a standby in another zone, automated backups, " +
			"point-in-time recovery over at least 7 days of logs, and deletion protection on both the " +
			"Pulumi resource and the instance",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			if !ctx.production() {
				return nil
			}
			var out []Finding
			for _, r := range inv.OfType(sqlInstanceType) {
				if isReplica(r) {
					continue
				}
				if a := r.String("settings.availabilityType"); a != "REGIONAL" {
					out = append(out, finding(r, "settings.availabilityType is %q: production needs REGIONAL (a standby in another zone with automatic failover)", orUnset(a)))
				}
				zone, secondary := r.String("settings.locationPreference.zone"), r.String("settings.locationPreference.secondaryZone")
				switch {
				case secondary == "":
					out = append(out, finding(r, "settings.locationPreference.secondaryZone is not set: pin the standby to a zone other than the primary's"))
				case secondary == zone:
					out = append(out, finding(r, "settings.locationPreference.secondaryZone %s is the primary zone: the standby must be in another zone", secondary))
				}
				if enabled, _ := boolAt(r, "settings.backupConfiguration.enabled"); !enabled {
					out = append(out, finding(r, "settings.backupConfiguration.enabled is not true: automated backups are off"))
				}
				if pitr, _ := boolAt(r, "settings.backupConfiguration.pointInTimeRecoveryEnabled"); !pitr {
					out = append(out, finding(r, "settings.backupConfiguration.pointInTimeRecoveryEnabled is not true: point-in-time recovery is off"))
				}
				days := float64(defaultLogRetentionDays)
				if v, ok := r.Get("settings.backupConfiguration.transactionLogRetentionDays"); ok && v != nil {
					days, _ = number(v)
				}
				if days < minLogRetentionDays {
					out = append(out, finding(r, "settings.backupConfiguration.transactionLogRetentionDays is %v: keep at least %d days of logs for point-in-time recovery", days, minLogRetentionDays))
				}
				// The provider's own guard defaults to on when unset; the API's flag defaults to off.
				if on, set := boolAt(r, "deletionProtection"); set && !on {
					out = append(out, finding(r, "deletionProtection is false: `pulumi destroy` could delete the production database"))
				}
				if on, _ := boolAt(r, "settings.deletionProtectionEnabled"); !on {
					out = append(out, finding(r, "settings.deletionProtectionEnabled is not true: the instance can be deleted outside Pulumi (console, gcloud)"))
				}
			}
			return out
		},
	}
}

// sslEnforcingModes are the sslMode values that refuse unencrypted connections.
var sslEnforcingModes = []string{"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"}

func postgresPrivateEncrypted() Policy {
	return Policy{
		Name: "postgres-private-encrypted",
		Description: "every Cloud SQL instance (production and sandbox) is encrypted with a customer-managed key, " +
			"reachable only on a private IP in the stack's VPC, and refuses connections without TLS",
		Severity: Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			var out []Finding
			for _, r := range inv.OfType(sqlInstanceType) {
				if r.String("encryptionKeyName") == "" {
					out = append(out, finding(r, "encryptionKeyName is not set: customer data must be encrypted with a customer-managed KMS key (CMEK)"))
				}
				// The API turns public IPv4 on unless told otherwise.
				if public, set := boolAt(r, "settings.ipConfiguration.ipv4Enabled"); public || !set {
					out = append(out, finding(r, "settings.ipConfiguration.ipv4Enabled is not false: the instance would get a public IPv4 address"))
				}
				if r.String("settings.ipConfiguration.privateNetwork") == "" {
					out = append(out, finding(r, "settings.ipConfiguration.privateNetwork is not set: attach the instance to the stack's VPC (private services access)"))
				}
				mode := r.String("settings.ipConfiguration.sslMode")
				requireSSL, _ := boolAt(r, "settings.ipConfiguration.requireSsl")
				switch {
				case slices.Contains(sslEnforcingModes, mode):
				case mode == "" && requireSSL:
				default:
					out = append(out, finding(r, "settings.ipConfiguration.sslMode is %q: set ENCRYPTED_ONLY (or TRUSTED_CLIENT_CERTIFICATE_REQUIRED) so that no connection is unencrypted", orUnset(mode)))
				}
			}
			return out
		},
	}
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
