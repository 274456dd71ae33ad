package enginetest

import (
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The replace table: for every resource type the stacks use that holds state or identity, the input paths whose
// change makes the real provider replace the resource, each with its source. Diff answers DIFF_SOME with Replaces
// for them, so the engine plans the replace it would plan for real, and refuses it for a protected resource.
//
// Sources, by abbreviation:
//   - sdk: the doc comment in github.com/pulumi/pulumi-gcp/sdk/v7@v7.38.0/go/gcp/<path>;
//   - tf: the Terraform google provider's resource page, which the Pulumi gcp provider bridges and whose "Changing
//     this forces a new resource" marks the schema's ForceNew fields:
//     https://registry.terraform.io/providers/hashicorp/google/5.44.0/docs/resources/<name>;
//   - k8s: pulumi-kubernetes provider/pkg/provider/diff.go (forceNewProperties), the table the real Kubernetes
//     provider replaces by (https://github.com/pulumi/pulumi-kubernetes/blob/master/provider/pkg/provider/diff.go);
//   - random: the Terraform random provider's resource page, which the Pulumi random provider bridges:
//     https://registry.terraform.io/providers/hashicorp/random/3.6.3/docs/resources/<name>.
type replaceRule struct {
	// paths are property paths of the inputs (the engine's camelCase names).
	paths  []string
	source string
}

var replaceTable = map[string]replaceRule{
	// Cloud SQL. Besides these, settings.diskSize may grow but never shrink: see diskShrinks.
	"gcp:sql/databaseInstance:DatabaseInstance": {
		paths: []string{"name", "project", "region", "masterInstanceName", "encryptionKeyName",
			"replicaConfiguration", "restoreBackupContext", "cloneContext"},
		source: "tf: sql_database_instance (name, region, master_instance_name, encryption_key_name, replica_configuration, " +
			"restore_backup_context, clone: \"Changing this forces a new resource\")",
	},
	"gcp:sql/database:Database": {
		paths:  []string{"name", "instance", "project"},
		source: "tf: sql_database (name, instance, project: force new)",
	},
	"gcp:sql/user:User": {
		paths:  []string{"name", "instance", "host", "project", "type"},
		source: "sdk: sql/user.go (name, instance, host: \"Changing this forces a new resource to be created\"); tf: sql_user (type)",
	},
	// Storage.
	"gcp:storage/bucket:Bucket": {
		paths:  []string{"name", "location", "project"},
		source: "sdk: storage/bucket.go (\"Once a bucket has been created, its location can't be changed\"); tf: storage_bucket (name, location, project: force new)",
	},
	// KMS: nothing of a key ring or key but its labels and rotation is mutable, and names are never freed.
	"gcp:kms/keyRing:KeyRing": {
		paths:  []string{"name", "location", "project"},
		source: "tf: kms_key_ring (name, location, project: force new); https://cloud.google.com/kms/docs/resource-hierarchy (key rings cannot be deleted)",
	},
	"gcp:kms/cryptoKey:CryptoKey": {
		paths:  []string{"name", "keyRing", "purpose", "importOnly", "skipInitialVersionCreation", "destroyScheduledDuration", "cryptoKeyBackend"},
		source: "sdk: kms/cryptoKey.go (\"The immutable purpose of this CryptoKey\"); tf: kms_crypto_key (name, key_ring, import_only, skip_initial_version_creation, destroy_scheduled_duration, crypto_key_backend: force new)",
	},
	// Addresses: everything but labels.
	"gcp:compute/globalAddress:GlobalAddress": {
		paths:  []string{"name", "project", "address", "addressType", "description", "ipVersion", "network", "prefixLength", "purpose"},
		source: "tf: compute_global_address (every argument but labels: force new)",
	},
	"gcp:compute/address:Address": {
		paths: []string{"name", "project", "region", "address", "addressType", "description", "ipVersion", "ipv6EndpointType",
			"network", "networkTier", "prefixLength", "purpose", "subnetwork"},
		source: "tf: compute_address (every argument but labels: force new)",
	},
	// Certificates.
	"gcp:compute/managedSslCertificate:ManagedSslCertificate": {
		paths:  []string{"name", "project", "description", "managed", "type"},
		source: "tf: compute_managed_ssl_certificate (every argument: force new; domains cannot be edited)",
	},
	"gcp:certificatemanager/certificate:Certificate": {
		paths:  []string{"name", "project", "location", "scope", "managed", "selfManaged"},
		source: "tf: certificate_manager_certificate (name, location, scope, managed, self_managed: force new)",
	},
	// GKE.
	"gcp:container/cluster:Cluster": {
		paths: []string{"name", "project", "location", "network", "subnetwork", "ipAllocationPolicy", "privateClusterConfig.enablePrivateNodes",
			"privateClusterConfig.masterIpv4CidrBlock", "enableAutopilot", "initialNodeCount"},
		source: "tf: container_cluster (name, location, network, subnetwork, ip_allocation_policy, private_cluster_config.master_ipv4_cidr_block, " +
			"enable_autopilot, initial_node_count: force new)",
	},
	"gcp:container/nodePool:NodePool": {
		paths: []string{"name", "namePrefix", "project", "location", "cluster", "initialNodeCount", "networkConfig",
			"nodeConfig.serviceAccount", "nodeConfig.oauthScopes", "nodeConfig.bootDiskKmsKey", "nodeConfig.shieldedInstanceConfig",
			"nodeConfig.spot", "nodeConfig.preemptible", "nodeConfig.localSsdCount", "nodeConfig.guestAccelerators"},
		source: "sdk: container/nodePool.go (initialNodeCount: \"this will force recreation of the resource\"); tf: container_node_pool " +
			"(name, cluster, location, network_config, node_config.service_account, oauth_scopes, boot_disk_kms_key, shielded_instance_config, spot: force new)",
	},
	// Kubernetes. metadata.name and metadata.namespace force a replacement of every kind (k8s: metadataForceNewProperties).
	"kubernetes:apps/v1:StatefulSet": {
		paths:  []string{"spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.selector", "spec.serviceName", "spec.volumeClaimTemplates"},
		source: "k8s: statefulSet; https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/ (only replicas, template, updateStrategy, persistentVolumeClaimRetentionPolicy, minReadySeconds and ordinals may change)",
	},
	"kubernetes:core/v1:PersistentVolumeClaim": {
		paths:  []string{"spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"},
		source: "k8s: core/v1 PersistentVolumeClaim (spec.resources.requests.storage may grow: https://kubernetes.io/docs/concepts/storage/persistent-volumes/#expanding-persistent-volumes-claims)",
	},
	"kubernetes:core/v1:PersistentVolumeClaimPatch": {
		paths:  []string{"spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"},
		source: "k8s: core/v1 PersistentVolumeClaim (a Patch resource is diffed by its kind's table)",
	},
	"kubernetes:apps/v1:Deployment": {
		paths:  []string{"spec.selector"},
		source: "k8s: deployment",
	},
	"kubernetes:batch/v1:Job": {
		paths:  []string{"spec.completions", "spec.parallelism", "spec.selector", "spec.template"},
		source: "k8s: job; https://kubernetes.io/docs/concepts/workloads/controllers/job/ (the pod template is immutable)",
	},
	"kubernetes:core/v1:Service": {
		paths:  []string{"spec.clusterIP"},
		source: "k8s: core/v1 Service",
	},
	"kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": {
		paths:  []string{"roleRef"},
		source: "k8s: roleBinding",
	},
	// Generated values: a replacement is what generates a new one (a rotation).
	"random:index/randomPassword:RandomPassword": {
		paths: []string{"keepers", "length", "special", "upper", "lower", "numeric", "number", "minLower", "minUpper",
			"minNumeric", "minSpecial", "overrideSpecial"},
		source: "random: password (every argument forces a new resource; keepers: \"Arbitrary map of values that, when changed, will trigger recreation of resource\")",
	},
	// Secrets and ConfigMaps: their content forces a replacement unless the provider is configured with
	// enableSecretMutable / enableConfigMapMutable and the object is not immutable (see kubeContentReplaces).
	"kubernetes:core/v1:Secret": {
		paths:  []string{"type"},
		source: "k8s: core/v1 Secret; forceNewProperties (.type, .stringData, .data unless enableSecretMutable and not immutable)",
	},
	"kubernetes:core/v1:ConfigMap": {
		paths:  nil,
		source: "k8s: forceNewProperties (.binaryData, .data unless enableConfigMapMutable and not immutable)",
	},
}

// kubeMetadataReplaces are the paths that force a replacement of every Kubernetes kind (k8s: metadataForceNewProperties).
var kubeMetadataReplaces = []string{"metadata.name", "metadata.namespace"}

// StatefulTypes are the resource types whose replacement or deletion loses data, an identity customers or other
// systems hold (an IP, a certificate, a key), or every pod of a tier at once. A day-2 change must never replace or
// delete one of these.
var StatefulTypes = map[string]string{
	"gcp:sql/databaseInstance:DatabaseInstance":               "the database: data, its IP, its name (reserved for a week after deletion)",
	"gcp:sql/database:Database":                               "an account's data",
	"gcp:sql/user:User":                                       "a role that owns an account's objects",
	"gcp:storage/bucket:Bucket":                               "backups and media",
	"gcp:kms/keyRing:KeyRing":                                 "cannot be deleted: a replacement collides with its own name",
	"gcp:kms/cryptoKey:CryptoKey":                             "everything it encrypted",
	"gcp:compute/globalAddress:GlobalAddress":                 "an IP that customers whitelist, or the private services range",
	"gcp:compute/address:Address":                             "an IP that customers whitelist",
	"gcp:compute/managedSslCertificate:ManagedSslCertificate": "up to 60 minutes without TLS while a new one provisions",
	"gcp:certificatemanager/certificate:Certificate":          "up to 60 minutes without TLS while a new one provisions",
	"gcp:container/cluster:Cluster":                           "every workload",
	"gcp:container/nodePool:NodePool":                         "every pod on the pool at once",
	"gcp:secretmanager/secret:Secret":                         "its versions",
	"kubernetes:apps/v1:StatefulSet":                          "every replica at once (Redis, RabbitMQ)",
	"kubernetes:core/v1:PersistentVolumeClaim":                "a replica's data",
}

// replaces returns the top-level input keys whose change makes the real provider replace the resource, and whether
// it deletes the old one first. olds are the state's outputs, oldInputs its inputs, news the new inputs (with the
// engine's ignoreChanges already applied); ignore are the resource's ignoreChanges paths.
func (p *standIn) replaces(typ string, olds, oldInputs, news resource.PropertyMap, ignore []string) (keys []string, deleteFirst bool) {
	var paths []string
	if rule, ok := replaceTable[typ]; ok {
		paths = append(paths, rule.paths...)
	}
	if p.pkg == "kubernetes" {
		paths = append(paths, kubeMetadataReplaces...)
		paths = append(paths, p.kubeContentReplaces(typ, news)...)
	}
	add := func(path string) {
		k := strings.SplitN(path, ".", 2)[0]
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, path := range paths {
		if ignored(path, ignore) {
			continue
		}
		if changedAt(path, oldInputs, news) {
			add(path)
		}
	}
	if typ == "gcp:sql/databaseInstance:DatabaseInstance" && !ignored("settings.diskSize", ignore) && diskShrinks(olds, news) {
		add("settings")
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return nil, false
	}
	return keys, deleteBeforeReplace(p.pkg, oldInputs, news)
}

// kubeOption reports a boolean option of the Kubernetes provider as configured. Every stack runs the same program,
// so the last configuration stands for all of them.
func (p *standIn) kubeOption(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.config[name]
	return v == "true"
}

// kubeContentReplaces: a Secret's or ConfigMap's content forces a replacement unless the provider is configured
// mutable for it and the object is not immutable (k8s: forceNewProperties, clients.IsSecret / IsConfigMap /
// IsImmutable; provider options enableSecretMutable, enableConfigMapMutable:
// https://www.pulumi.com/registry/packages/kubernetes/api-docs/provider/).
func (p *standIn) kubeContentReplaces(typ string, news resource.PropertyMap) []string {
	immutable := news["immutable"].IsBool() && news["immutable"].BoolValue()
	switch typ {
	case "kubernetes:core/v1:Secret":
		if immutable || !p.kubeOption("enableSecretMutable") {
			return []string{"data", "stringData"}
		}
	case "kubernetes:core/v1:ConfigMap":
		if immutable || !p.kubeOption("enableConfigMapMutable") {
			return []string{"data", "binaryData"}
		}
	}
	return nil
}

// deleteBeforeReplace: the real providers delete first when the replacement keeps a user-set name, which must be
// unique. Kubernetes: a named (not auto-named) object whose name and namespace stay (pulumi-kubernetes
// provider/pkg/provider/provider.go, Diff: deleteBeforeReplace). GCP: a resource whose explicit name stays
// (pulumi-terraform-bridge pkg/tfbridge/provider.go, nameRequiresDeleteBeforeReplace).
func deleteBeforeReplace(pkg string, oldInputs, news resource.PropertyMap) bool {
	switch pkg {
	case "kubernetes":
		return !changedAt("metadata.name", oldInputs, news) && !changedAt("metadata.namespace", oldInputs, news)
	case "gcp":
		n, has := news["name"]
		return has && !n.IsNull() && !changedAt("name", oldInputs, news)
	}
	return false
}

// diskShrinks: Cloud SQL can grow a disk but never shrink it, so a diskSize below the current size (which
// autoresize raises) replaces the instance. Source: sdk sql/pulumiTypes.go, DatabaseInstanceSettings.DiskSize ("Size
// of a running instance cannot be reduced but can be increased ... this value will override the resizing from
// diskAutoresize ... set lifecycle.ignore_changes on this field") and DiskAutoresize ("future pulumi up calls will
// attempt to delete the instance in order to resize the disk").
func diskShrinks(olds, news resource.PropertyMap) bool {
	cur, ok1 := number(olds, "settings.diskSize")
	want, ok2 := number(news, "settings.diskSize")
	return ok1 && ok2 && want < cur
}

// AutoresizeGrowth is how much a refresh finds a Cloud SQL disk with autoresize grown since the last apply: Cloud
// SQL adds space when free space runs low (https://cloud.google.com/sql/docs/postgres/instance-settings#automatic-storage-increase).
const AutoresizeGrowth = 25

// refreshed is what a Read (refresh) finds in the cloud: a Cloud SQL disk with autoresize has grown.
func refreshed(typ string, props resource.PropertyMap) resource.PropertyMap {
	if typ != "gcp:sql/databaseInstance:DatabaseInstance" {
		return props
	}
	s, ok := props["settings"]
	if !ok || !s.IsObject() {
		return props
	}
	settings := s.ObjectValue().Copy()
	auto := settings["diskAutoresize"]
	size := settings["diskSize"]
	if !auto.IsBool() || !auto.BoolValue() || !size.IsNumber() {
		return props
	}
	settings["diskSize"] = resource.NewProperty(size.NumberValue() + AutoresizeGrowth)
	out := props.Copy()
	out["settings"] = resource.NewObjectProperty(settings)
	return out
}

func ignored(path string, ignore []string) bool {
	for _, i := range ignore {
		if i == path || strings.HasPrefix(path, i+".") || strings.HasPrefix(path, i+"[") {
			return true
		}
	}
	return false
}

func valueAt(path string, m resource.PropertyMap) (resource.PropertyValue, bool) {
	pp, err := resource.ParsePropertyPath(path)
	if err != nil {
		return resource.PropertyValue{}, false
	}
	v, ok := pp.Get(resource.NewObjectProperty(m))
	if ok {
		for v.IsSecret() {
			v = v.SecretValue().Element
		}
	}
	return v, ok && !v.IsNull()
}

func number(m resource.PropertyMap, path string) (float64, bool) {
	v, ok := valueAt(path, m)
	if !ok || !v.IsNumber() {
		return 0, false
	}
	return v.NumberValue(), true
}

// changedAt reports whether the value at path differs; an unknown new value counts as a change, as it does for the
// real providers (a force-new field that is unknown at preview plans a replacement).
func changedAt(path string, olds, news resource.PropertyMap) bool {
	o, hasOld := valueAt(path, olds)
	n, hasNew := valueAt(path, news)
	if hasNew && (n.IsComputed() || n.IsOutput() && !n.OutputValue().Known) {
		return true
	}
	if hasOld != hasNew {
		return true
	}
	return hasOld && o.Diff(n) != nil
}
