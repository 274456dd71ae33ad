package enginetest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Cloud is the behaviour model the stand-in providers share: what GCP and the cluster hold across resources, so
// that one create can depend on what another created, as it does for real: an API switched on, a service agent that
// exists, the NEGs GKE's controller made, the DNS records a certificate waits for. The stand-ins refuse what the
// real APIs refuse, with the real error's wording, so that a program that would fail its first real `pulumi up`
// fails here first. Each rule names its public source. The model is in one place: this file.
type Cloud struct {
	mu sync.Mutex
	// stackProject maps a stack to the project its resources name, for the resources that name none (keys,
	// grants on a bucket): the provider's default project.
	stackProject map[string]string
	// enabled: project → API → on.
	enabled map[string]map[string]bool
	// accounts are the service accounts and Google-managed service agents that exist, by e-mail.
	accounts map[string]bool
	// workloadPools are the Workload Identity pools of the clusters that exist ("<project>.svc.id.goog").
	workloadPools map[string]bool
	// nodes: project → zone → nodes the node pools start with.
	nodes map[string]map[string]int
	// negRequested: NEG name → when a Kubernetes Service asked for it through its cloud.google.com/neg annotation.
	negRequested map[string]time.Time
	// negEndpoints: NEG name → the endpoints GKE syncs into it and how many health-check rounds they have passed.
	negEndpoints map[string]*endpoints
	// served: backend service URN → it has had healthy capacity (the load balancer has been serving through it).
	served map[string]bool
	// gaps are the moments a backend service that had been serving had no healthy capacity (ServingGaps).
	gaps []string
	// resources are the live GCP resources by URN, for the rules that follow references (load balancer → proxy →
	// certificate map → certificate → DNS authorization → DNS record).
	resources map[string]liveResource
	// addresses counts the IP addresses allocated so far.
	addresses int
	// clusterAPI, when set, is the Kubernetes API server every GKE cluster answers with (SetClusterAPI).
	clusterAPI *ClusterAPI
	// sqlServer, when set, is the PostgreSQL server every Cloud SQL instance is (SetSQLServer).
	sqlServer *SQLServer
	// kms are the KMS key rings and keys by id: GCP never deletes them, whatever the state says (kmsNeverDeleted).
	kms map[string]liveResource
	// sqlDeleted: Cloud SQL instance id (project/name) → when it was deleted (sqlNameReserved).
	sqlDeleted map[string]time.Time
}

type liveResource struct {
	typ, id, project string
	inputs, outputs  resource.PropertyMap
}

// NEGDelay is how long after the Service the NEG controller takes to create a NEG: the creation is asynchronous,
// so a program must look the NEGs up (and wait) rather than assume them.
const NEGDelay = 500 * time.Millisecond

func newCloud() *Cloud {
	return &Cloud{
		stackProject: map[string]string{}, enabled: map[string]map[string]bool{}, accounts: map[string]bool{},
		workloadPools: map[string]bool{}, nodes: map[string]map[string]int{}, negRequested: map[string]time.Time{},
		resources: map[string]liveResource{}, kms: map[string]liveResource{}, sqlDeleted: map[string]time.Time{},
		negEndpoints: map[string]*endpoints{}, served: map[string]bool{},
	}
}

// resolveProject is the project a resource acts in: its own project input, or the project its stack's other
// resources name (the provider's default project).
func (c *Cloud) resolveProject(urn string, inputs resource.PropertyMap) string {
	stack := ""
	if u, err := resource.ParseURN(urn); err == nil {
		stack = u.Stack().String()
	}
	if p, ok := inputs["project"]; ok && p.IsString() && p.StringValue() != "" {
		if _, seen := c.stackProject[stack]; !seen && stack != "" {
			c.stackProject[stack] = p.StringValue()
		}
		return p.StringValue()
	}
	return c.stackProject[stack]
}

// external reports a project no stack deploys into (a shared DNS or registry project): it exists before the test
// with its APIs on.
func (c *Cloud) external(project string) bool {
	for _, p := range c.stackProject {
		if p == project {
			return false
		}
	}
	return true
}

// requireAPI refuses a call to a disabled API with the error GCP answers.
// Source: https://cloud.google.com/service-usage/docs/troubleshooting (SERVICE_DISABLED).
func (c *Cloud) requireAPI(token, project string) error {
	api, err := apis.For(token)
	if err != nil || api == "" || api == apis.ServiceUsage || project == "" || c.external(project) {
		return err
	}
	if c.enabled[project][api] {
		return nil
	}
	n := inventory.ProjectNumber(project)
	return fmt.Errorf("googleapi: Error 403: %s API has not been used in project %s before or it is disabled. "+
		"Enable it by visiting https://console.developers.google.com/apis/api/%s/overview?project=%s then retry. "+
		"If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry., "+
		"SERVICE_DISABLED (%s)", api, n, api, n, token)
}

// serviceAgentOnEnable lists the service agents Google creates when an API is switched on.
// Sources: https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets (the Kubernetes Engine
// Service Agent), https://cloud.google.com/compute/docs/access/service-accounts#compute_engine_service_account.
var serviceAgentOnEnable = map[string]string{
	"container.googleapis.com": "service-%s@container-engine-robot.iam.gserviceaccount.com",
	"compute.googleapis.com":   "service-%s@compute-system.iam.gserviceaccount.com",
}

// identityAgent is the agent services.generateServiceIdentity creates for an API
// (https://cloud.google.com/iam/docs/service-agents).
func identityAgent(project, service string) string {
	name := strings.TrimSuffix(service, ".googleapis.com")
	if name == "sqladmin" {
		name = "cloud-sql"
	}
	return fmt.Sprintf("service-%s@gcp-sa-%s.iam.gserviceaccount.com", inventory.ProjectNumber(project), name)
}

// storageAgent is the Cloud Storage service agent, created by the first call that asks for it
// (https://cloud.google.com/storage/docs/projects#service-agents).
func storageAgent(project string) string {
	return fmt.Sprintf("service-%s@gs-project-accounts.iam.gserviceaccount.com", inventory.ProjectNumber(project))
}

var workloadPrincipal = regexp.MustCompile(`^serviceAccount:([a-z0-9-]+\.svc\.id\.goog)\[[^]]+\]$`)

// checkMember refuses an IAM grant to an identity that does not exist. Sources:
// https://cloud.google.com/iam/docs/troubleshooting-access ("Service account ... does not exist" on setIamPolicy);
// a Workload Identity principal needs its pool, which GKE creates with the first cluster that enables Workload
// Identity (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity), else "Identity Pool does not
// exist".
func (c *Cloud) checkMember(member string) error {
	if m := workloadPrincipal.FindStringSubmatch(member); m != nil {
		if !c.workloadPools[m[1]] {
			return fmt.Errorf("googleapi: Error 400: Identity Pool does not exist (%s). Please check that you specified a valid resource name as returned in the `name` attribute in the configuration API., badRequest", m[1])
		}
		return nil
	}
	email, ok := strings.CutPrefix(member, "serviceAccount:")
	if !ok || c.accounts[email] {
		return nil
	}
	return fmt.Errorf("googleapi: Error 400: Service account %s does not exist., badRequest", email)
}

// negSelfLink parses a zonal NEG self link.
var negSelfLink = regexp.MustCompile(`projects/([^/]+)/zones/([^/]+)/networkEndpointGroups/([^/]+)$`)

// negExists: GKE's NEG controller creates a standalone NEG, asynchronously, in each zone where the cluster has
// nodes, once a Service asks for it (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg).
func (c *Cloud) negExists(project, zone, name string) bool {
	at, asked := c.negRequested[name]
	return asked && time.Since(at) >= NEGDelay && c.nodes[project][zone] > 0
}

func negNotFound(project, zone, name string) error {
	return fmt.Errorf("googleapi: Error 404: The resource 'projects/%s/zones/%s/networkEndpointGroups/%s' was not found, notFound", project, zone, name)
}

// collections are the resource types whose ids other resources quote in full, with the id's collection.
var collections = map[string]string{
	"gcp:certificatemanager/certificate:Certificate":           "certificates",
	"gcp:certificatemanager/certificateMap:CertificateMap":     "certificateMaps",
	"gcp:certificatemanager/dnsAuthorization:DnsAuthorization": "dnsAuthorizations",
}

// ID is the id GCP gives a new resource of typ named name: Certificate Manager's and KMS's are full resource names, a
// Cloud SQL instance's is its name.
func (c *Cloud) ID(urn, typ, name string, inputs resource.PropertyMap) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := str(inputs, "name"); n != "" {
		switch typ {
		case kmsKeyRing:
			return fmt.Sprintf("projects/%s/locations/%s/keyRings/%s", c.resolveProject(urn, inputs), str(inputs, "location"), n)
		case kmsCryptoKey:
			return str(inputs, "keyRing") + "/cryptoKeys/" + n
		case sqlInstance:
			return n
		}
	}
	if coll, ok := collections[typ]; ok {
		location := "global"
		if l, ok := inputs["location"]; ok && l.IsString() && l.StringValue() != "" {
			location = l.StringValue()
		}
		return fmt.Sprintf("projects/%s/locations/%s/%s/%s", c.resolveProject(urn, inputs), location, coll, name)
	}
	return name + "-id"
}

// Create applies the create of a GCP resource to the model: it refuses what GCP would refuse and records what the
// resource makes exist.
func (c *Cloud) Create(urn, typ, id string, inputs, outputs resource.PropertyMap) error {
	return c.apply(urn, typ, id, inputs, outputs, true)
}

// Update applies an update: the same rules, except that the resource's own name is of course taken.
func (c *Cloud) Update(urn, typ, id string, inputs, outputs resource.PropertyMap) error {
	return c.apply(urn, typ, id, inputs, outputs, false)
}

func (c *Cloud) apply(urn, typ, id string, inputs, outputs resource.PropertyMap, create bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probeRound()
	project := c.resolveProject(urn, inputs)
	if err := c.requireAPI(typ, project); err != nil {
		return err
	}
	if create {
		if err := c.nameFree(typ, id, project); err != nil {
			return err
		}
	}
	if member := str(inputs, "member"); member != "" {
		if err := c.checkMember(member); err != nil {
			return err
		}
	}
	switch typ {
	case apis.ServiceType:
		service := str(inputs, "service")
		if c.enabled[project] == nil {
			c.enabled[project] = map[string]bool{}
		}
		c.enabled[project][service] = true
		if agent, ok := serviceAgentOnEnable[service]; ok {
			c.accounts[fmt.Sprintf(agent, inventory.ProjectNumber(project))] = true
		}
	case "gcp:projects/serviceIdentity:ServiceIdentity":
		service := str(inputs, "service")
		if !c.enabled[project][service] {
			return fmt.Errorf("googleapi: Error 400: Service %s is not enabled in project %s, failedPrecondition", service, project)
		}
		email := identityAgent(project, service)
		c.accounts[email] = true
		outputs["email"] = resource.NewProperty(email)
		outputs["member"] = resource.NewProperty("serviceAccount:" + email)
	case "gcp:serviceaccount/account:Account":
		c.accounts[str(outputs, "email")] = true
	case "gcp:container/cluster:Cluster":
		if wi, ok := inputs["workloadIdentityConfig"]; ok && wi.IsObject() {
			if pool := str(wi.ObjectValue(), "workloadPool"); pool != "" {
				c.workloadPools[pool] = true
			}
		}
		c.clusterAPI.answer(outputs)
	case sqlInstance, "gcp:sql/user:User", "gcp:sql/database:Database":
		if err := c.sqlServer.apply(typ, inputs, outputs); err != nil {
			return err
		}
	case "gcp:container/nodePool:NodePool":
		initial := 0
		if v, ok := inputs["initialNodeCount"]; ok && v.IsNumber() {
			initial = int(v.NumberValue())
		}
		if c.nodes[project] == nil {
			c.nodes[project] = map[string]int{}
		}
		if locs, ok := inputs["nodeLocations"]; ok && locs.IsArray() {
			for _, z := range locs.ArrayValue() {
				if z.IsString() {
					c.nodes[project][z.StringValue()] += initial
				}
			}
		}
	case "gcp:compute/globalAddress:GlobalAddress", "gcp:compute/address:Address":
		// GCP allocates an address unless one is asked for: each is distinct.
		if _, asked := inputs["address"]; !asked {
			c.addresses++
			outputs["address"] = resource.NewProperty(fmt.Sprintf("203.0.%d.%d", 113+c.addresses/250, 1+c.addresses%250))
		}
	case "gcp:compute/backendService:BackendService":
		if err := c.checkBackends(inputs); err != nil {
			return err
		}
	}
	live := liveResource{typ: typ, id: id, project: project, inputs: inputs.Copy(), outputs: outputs.Copy()}
	c.resources[urn] = live
	if typ == kmsKeyRing || typ == kmsCryptoKey {
		c.kms[id] = live
	}
	c.checkServing("after " + urn)
	return nil
}

// Resource types whose names the model reserves.
const (
	kmsKeyRing   = "gcp:kms/keyRing:KeyRing"
	kmsCryptoKey = "gcp:kms/cryptoKey:CryptoKey"
	sqlInstance  = "gcp:sql/databaseInstance:DatabaseInstance"
)

// SQLNameReserved is how long a deleted Cloud SQL instance's name stays taken.
const SQLNameReserved = 7 * 24 * time.Hour

// nameFree refuses a create whose name GCP still holds.
//
// kmsNeverDeleted: the provider never deletes a key ring or key. "KeyRings cannot be deleted from Google Cloud
// Platform. Destroying a provider-managed KeyRing will remove it from state but will not delete the resource from the
// project" (https://www.pulumi.com/registry/packages/gcp/api-docs/kms/keyring/); destroying a CryptoKey destroys its
// versions and keeps the key (https://www.pulumi.com/registry/packages/gcp/api-docs/kms/cryptokey/). Even Cloud KMS's
// own delete, which the provider does not call, leaves key names unusable: "the names of deleted CryptoKeys can't be
// reused" (https://cloud.google.com/kms/docs/delete-kms-resources). A second create answers 409 alreadyExists.
//
// sqlNameReserved: a Cloud SQL instance name stays taken after the instance is deleted: "you can't reuse the name of
// the deleted instance until one week from the deletion date" (Cloud SQL's error; the same words in
// https://docs.nais.io/persistence/postgres/how-to/delete-database/, and the 7-to-10-day wait reported in
// https://github.com/cloudfoundry/bosh/pull/2741 and https://github.com/hashicorp/terraform/issues/4557). Google's page
// (https://cloud.google.com/sql/docs/postgres/delete-instance) now says a name "can be reused immediately"; the model
// keeps the stricter, observed behaviour, which a program that never reuses a name passes either way.
func (c *Cloud) nameFree(typ, id, project string) error {
	switch typ {
	case kmsKeyRing, kmsCryptoKey:
		if _, exists := c.kms[id]; exists {
			return fmt.Errorf("googleapi: Error 409: %s %s already exists., alreadyExists", typ[strings.LastIndex(typ, ":")+1:], id)
		}
	case sqlInstance:
		for _, r := range c.resources {
			if r.typ == sqlInstance && r.project == project && r.id == id {
				return fmt.Errorf("googleapi: Error 409: The Cloud SQL instance already exists., instanceAlreadyExists")
			}
		}
		if at, deleted := c.sqlDeleted[project+"/"+id]; deleted && time.Since(at) < SQLNameReserved {
			return fmt.Errorf("googleapi: Error 409: The Cloud SQL instance already exists. When you delete an instance, you can't reuse the name of the deleted instance until one week from the deletion date., instanceAlreadyExists")
		}
	}
	return nil
}

// deletionRefused: the provider refuses to delete a Cloud SQL instance or a GKE cluster whose deletion_protection
// argument is true, and Cloud SQL refuses while the instance's own deletion protection is on. Sources:
// https://www.pulumi.com/registry/packages/gcp/api-docs/sql/databaseinstance/ (deletionProtection: "a destroy or
// update command that deletes the instance will fail"), https://cloud.google.com/sql/docs/postgres/deletion-protection
// ("you must disable it before deleting the instance"),
// https://www.pulumi.com/registry/packages/gcp/api-docs/container/cluster/ (deletionProtection).
func deletionRefused(typ, id string, outputs resource.PropertyMap) error {
	on := func(path string) bool {
		v, ok := valueAt(path, outputs)
		return ok && v.IsBool() && v.BoolValue()
	}
	switch typ {
	case sqlInstance:
		if on("deletionProtection") {
			return fmt.Errorf("Error, failed to delete instance because deletion_protection is set to true. Set it to false to proceed with instance deletion")
		}
		if on("settings.deletionProtectionEnabled") {
			return fmt.Errorf("googleapi: Error 400: The instance %s is protected. Please disable the deletion protection and try again., invalid", id)
		}
	case "gcp:container/cluster:Cluster":
		if on("deletionProtection") {
			return fmt.Errorf("Cannot destroy cluster because deletion_protection is set to true. Set it to false to proceed with cluster deletion")
		}
	}
	return nil
}

// checkBackends: a backend service may only reference NEGs that exist
// (https://cloud.google.com/load-balancing/docs/backend-service#backends).
func (c *Cloud) checkBackends(inputs resource.PropertyMap) error {
	backends, ok := inputs["backends"]
	if !ok || !backends.IsArray() {
		return nil
	}
	for _, b := range backends.ArrayValue() {
		if !b.IsObject() {
			continue
		}
		g, ok := b.ObjectValue()["group"]
		if !ok || !g.IsString() {
			continue
		}
		m := negSelfLink.FindStringSubmatch(g.StringValue())
		if m != nil && !c.negExists(m[1], m[2], m[3]) {
			return negNotFound(m[1], m[2], m[3])
		}
	}
	return nil
}

// Delete removes a resource from the model, unless GCP refuses (deletionRefused). APIs stay on unless the Service
// asked to be disabled on destroy; KMS key rings and keys stay (kmsNeverDeleted); a Cloud SQL instance's name stays
// taken (sqlNameReserved).
func (c *Cloud) Delete(urn, typ, id string, outputs resource.PropertyMap) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := deletionRefused(typ, id, outputs); err != nil {
		return err
	}
	c.probeRound()
	live, ok := c.resources[urn]
	delete(c.resources, urn)
	delete(c.served, urn)
	c.checkServing("after deleting " + urn)
	if !ok {
		return nil
	}
	switch typ {
	case sqlInstance:
		c.sqlDeleted[live.project+"/"+live.id] = time.Now()
	case apis.ServiceType:
		if v, set := outputs["disableOnDestroy"]; set && v.IsBool() && v.BoolValue() {
			if s, ok := outputs["service"]; ok && s.IsString() {
				delete(c.enabled[live.project], s.StringValue())
			}
		}
	}
	return nil
}

// Read is what GCP answers for an existing resource by id (an import): the KMS key rings and keys the model holds,
// deleted from a state or not. ok is false for anything else.
func (c *Cloud) Read(typ, id string) (inputs, outputs resource.PropertyMap, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live, ok := c.kms[id]
	if !ok || live.typ != typ {
		return nil, nil, false
	}
	return live.inputs.Copy(), live.outputs.Copy(), true
}

// Invoke answers the provider functions whose results depend on the model. ok is false for functions the model
// does not know.
func (c *Cloud) Invoke(token string, args resource.PropertyMap) (out resource.PropertyMap, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	project := str(args, "project")
	if project == "" {
		project = str(args, "projectId")
	}
	switch token {
	case "gcp:organizations/getProject:getProject":
		if err := c.requireAPI(token, project); err != nil {
			return nil, true, err
		}
		return resource.PropertyMap{"projectId": resource.NewProperty(project), "number": resource.NewProperty(inventory.ProjectNumber(project))}, true, nil
	case "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
		if err := c.requireAPI(token, project); err != nil {
			return nil, true, err
		}
		email := storageAgent(project)
		c.accounts[email] = true
		return resource.PropertyMap{
			"project": resource.NewProperty(project), "emailAddress": resource.NewProperty(email),
			"member": resource.NewProperty("serviceAccount:" + email),
		}, true, nil
	case "gcp:kms/getKMSKeyRing:getKMSKeyRing", "gcp:kms/getKMSCryptoKey:getKMSCryptoKey":
		if err := c.requireAPI(token, project); err != nil {
			return nil, true, err
		}
		return c.lookupKMS(token, args)
	case "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup":
		if err := c.requireAPI(token, project); err != nil {
			return nil, true, err
		}
		zone, name := str(args, "zone"), str(args, "name")
		if self := str(args, "selfLink"); self != "" {
			if m := negSelfLink.FindStringSubmatch(self); m != nil {
				project, zone, name = m[1], m[2], m[3]
			}
		}
		if !c.negExists(project, zone, name) {
			return nil, true, negNotFound(project, zone, name)
		}
		self := fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/zones/%s/networkEndpointGroups/%s", project, zone, name)
		return resource.PropertyMap{
			"project": resource.NewProperty(project), "zone": resource.NewProperty(zone), "name": resource.NewProperty(name),
			"selfLink": resource.NewProperty(self), "networkEndpointType": resource.NewProperty("GCE_VM_IP_PORT"),
			"defaultPort": resource.NewProperty(0.0), "size": resource.NewProperty(0.0),
		}, true, nil
	}
	return nil, false, nil
}

// lookupKMS answers the KMS data sources from every key ring and key that exists (kmsNeverDeleted), and fails as the
// provider's data source does for a missing one: "<id> not found" (terraform-provider-google
// data_source_google_kms_key_ring.go, data_source_google_kms_crypto_key.go).
func (c *Cloud) lookupKMS(token string, args resource.PropertyMap) (resource.PropertyMap, bool, error) {
	var id string
	if token == "gcp:kms/getKMSKeyRing:getKMSKeyRing" {
		id = fmt.Sprintf("projects/%s/locations/%s/keyRings/%s", str(args, "project"), str(args, "location"), str(args, "name"))
	} else {
		id = str(args, "keyRing") + "/cryptoKeys/" + str(args, "name")
	}
	live, ok := c.kms[id]
	if !ok {
		return nil, true, fmt.Errorf("%s not found", id)
	}
	out := live.outputs.Copy()
	out["id"] = resource.NewProperty(id)
	return out, true, nil
}

// KubernetesApplied records what a Kubernetes object asks of GCP: a Service annotated cloud.google.com/neg makes
// GKE's NEG controller create the named NEGs and keep their endpoints equal to the ready pods the Service selects
// (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg). A changed selector swaps every endpoint
// at once; the new ones start unhealthy. Pods are assumed ready: the model is about the load balancer.
func (c *Cloud) KubernetesApplied(typ string, inputs resource.PropertyMap) {
	if typ != "kubernetes:core/v1:Service" {
		return
	}
	meta, ok := inputs["metadata"]
	if !ok || !meta.IsObject() {
		return
	}
	ann, ok := meta.ObjectValue()["annotations"]
	if !ok || !ann.IsObject() {
		return
	}
	neg, ok := ann.ObjectValue()["cloud.google.com/neg"]
	if !ok || !neg.IsString() {
		return
	}
	var spec struct {
		ExposedPorts map[string]struct {
			Name string `json:"name"`
		} `json:"exposed_ports"`
	}
	if json.Unmarshal([]byte(neg.StringValue()), &spec) != nil {
		return
	}
	selector := ""
	if sp, ok := inputs["spec"]; ok && sp.IsObject() {
		if sel, ok := sp.ObjectValue()["selector"]; ok && sel.IsObject() {
			var pairs []string
			for k, v := range sel.ObjectValue() {
				if v.IsString() {
					pairs = append(pairs, string(k)+"="+v.StringValue())
				}
			}
			slices.Sort(pairs)
			selector = strings.Join(pairs, ",")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probeRound()
	for _, p := range spec.ExposedPorts {
		if p.Name == "" {
			continue
		}
		if _, seen := c.negRequested[p.Name]; !seen {
			c.negRequested[p.Name] = time.Now()
		}
		if e := c.negEndpoints[p.Name]; e == nil || e.selector != selector {
			c.negEndpoints[p.Name] = &endpoints{selector: selector}
		}
	}
	var negs []string
	for _, p := range spec.ExposedPorts {
		negs = append(negs, p.Name)
	}
	slices.Sort(negs)
	c.checkServing("after the Service of NEG " + strings.Join(negs, ",") + " selects " + selector)
}

// endpoints are a NEG's endpoints: the pods one selector selects, and the health-check rounds they have passed.
type endpoints struct {
	selector string
	probes   int
}

// Load balancer health, with every change the model sees (a GCP create, update or delete, a Kubernetes Service
// applied) as one health-check round. Sources: a backend service health-checks each backend attached to it
// (https://cloud.google.com/load-balancing/docs/backend-service), an endpoint is healthy only after healthyThreshold
// consecutive successful probes and only healthy endpoints receive new requests
// (https://cloud.google.com/load-balancing/docs/health-check-concepts); a backend whose capacityScaler is 0 is
// drained: it receives no new requests (https://cloud.google.com/compute/docs/reference/rest/v1/backendServices,
// Backend.capacityScaler).

// defaultHealthyThreshold is GCP's default healthyThreshold.
const defaultHealthyThreshold = 2

// probeRound passes one health-check round for every NEG attached to a health-checked backend service.
func (c *Cloud) probeRound() {
	attached := map[string]bool{}
	for _, r := range c.resources {
		if r.typ == "gcp:compute/backendService:BackendService" && c.healthCheck(r) != nil {
			for _, b := range backendsOf(r) {
				attached[b.neg] = true
			}
		}
	}
	for neg := range attached {
		if e := c.negEndpoints[neg]; e != nil && e.selector != "" {
			e.probes++
		}
	}
}

// checkServing records a gap for every backend service that has been serving and now has no healthy capacity.
func (c *Cloud) checkServing(cause string) {
	for urn, r := range c.resources {
		if r.typ != "gcp:compute/backendService:BackendService" {
			continue
		}
		if c.healthyCapacity(r) > 0 {
			c.served[urn] = true
		} else if c.served[urn] {
			c.gaps = append(c.gaps, fmt.Sprintf("%s has no healthy endpoint with capacity (%s)", urn, cause))
		}
	}
}

// healthyCapacity is the summed capacityScaler of a backend service's backends whose NEG exists and whose
// endpoints have passed the health check.
func (c *Cloud) healthyCapacity(r liveResource) float64 {
	hc := c.healthCheck(r)
	if hc == nil {
		return 0
	}
	threshold := defaultHealthyThreshold
	if v, ok := hc.outputs["healthyThreshold"]; ok && v.IsNumber() {
		threshold = int(v.NumberValue())
	}
	total := 0.0
	for _, b := range backendsOf(r) {
		e := c.negEndpoints[b.neg]
		if b.capacity > 0 && c.negExists(b.project, b.zone, b.neg) && e != nil && e.selector != "" && e.probes >= threshold {
			total += b.capacity
		}
	}
	return total
}

// healthCheck is the health check a backend service names, if it exists.
func (c *Cloud) healthCheck(r liveResource) *liveResource {
	link := str(r.outputs, "healthChecks")
	if l := strs(r.outputs, "healthChecks"); len(l) > 0 {
		link = l[0]
	}
	return c.bySelfLink(link)
}

type backend struct {
	project, zone, neg string
	capacity           float64
}

// backendsOf lists a backend service's NEG backends; capacityScaler defaults to 1, as in the API.
func backendsOf(r liveResource) []backend {
	v, ok := r.outputs["backends"]
	if !ok || !v.IsArray() {
		return nil
	}
	var out []backend
	for _, b := range v.ArrayValue() {
		if !b.IsObject() {
			continue
		}
		m := negSelfLink.FindStringSubmatch(str(b.ObjectValue(), "group"))
		if m == nil {
			continue
		}
		capacity := 1.0
		if s, ok := b.ObjectValue()["capacityScaler"]; ok && s.IsNumber() {
			capacity = s.NumberValue()
		}
		out = append(out, backend{project: m[1], zone: m[2], neg: m[3], capacity: capacity})
	}
	return out
}

// ServingGaps lists every moment a backend service that had been serving had no healthy endpoint with capacity:
// requests then get 502s.
func (c *Cloud) ServingGaps() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.gaps)
}

// ServesTLS reports whether a client that resolves hostname through the DNS records the stacks manage reaches a
// load balancer that presents a valid certificate for it. Sources: a Google-managed (compute) certificate
// provisions only once DNS resolves to the load balancer, which takes up to 60 minutes after the switch
// (https://cloud.google.com/load-balancing/docs/ssl-certificates/google-managed-certs#update-dns); a Certificate
// Manager certificate with DNS authorizations is issued as soon as the authorizations' CNAME records resolve,
// before any traffic moves (https://cloud.google.com/certificate-manager/docs/dns-authorizations).
func (c *Cloud) ServesTLS(hostname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ip := c.record(hostname+".", "A")
	if ip == "" {
		return fmt.Errorf("%s: no DNS A record: clients cannot reach the load balancer", hostname)
	}
	var proxy *liveResource
	for _, r := range c.resources {
		if r.typ == "gcp:compute/globalForwardingRule:GlobalForwardingRule" && str(r.outputs, "ipAddress") == ip &&
			str(r.outputs, "portRange") == "443" {
			proxy = c.bySelfLink(str(r.outputs, "target"))
		}
	}
	if proxy == nil {
		return fmt.Errorf("%s: %s answers no HTTPS forwarding rule", hostname, ip)
	}
	if m := str(proxy.outputs, "certificateMap"); m != "" {
		return c.mapServes(hostname, strings.TrimPrefix(m, "//certificatemanager.googleapis.com/"))
	}
	return fmt.Errorf("%s: the load balancer at %s presents a Google-managed compute certificate, which stays PROVISIONING until DNS has pointed at it for up to 60 minutes: clients get TLS errors meanwhile", hostname, ip)
}

func (c *Cloud) mapServes(hostname, mapID string) error {
	var m *liveResource
	for _, r := range c.resources {
		if r.typ == "gcp:certificatemanager/certificateMap:CertificateMap" && r.id == mapID {
			m = &r
		}
	}
	if m == nil {
		return fmt.Errorf("%s: certificate map %s does not exist", hostname, mapID)
	}
	var problems []string
	for _, e := range c.resources {
		if e.typ != "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry" || str(e.outputs, "map") != str(m.outputs, "name") ||
			str(e.outputs, "hostname") != hostname {
			continue
		}
		for _, certID := range strs(e.outputs, "certificates") {
			err := c.certificateActive(certID)
			if err == nil {
				return nil
			}
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		return fmt.Errorf("%s: certificate map %s has no entry for it", hostname, mapID)
	}
	return fmt.Errorf("%s: %s", hostname, strings.Join(problems, "; "))
}

func (c *Cloud) certificateActive(id string) error {
	for _, r := range c.resources {
		if r.typ != "gcp:certificatemanager/certificate:Certificate" || r.id != id {
			continue
		}
		managed, ok := r.outputs["managed"]
		if !ok || !managed.IsObject() {
			return fmt.Errorf("certificate %s is not Google-managed", id)
		}
		auths := strs(managed.ObjectValue(), "dnsAuthorizations")
		if len(auths) == 0 {
			return fmt.Errorf("certificate %s has no DNS authorization: it is issued only after DNS points at the load balancer", id)
		}
		for _, a := range auths {
			domain := ""
			for _, d := range c.resources {
				if d.typ == "gcp:certificatemanager/dnsAuthorization:DnsAuthorization" && d.id == a {
					domain = str(d.outputs, "domain")
				}
			}
			if domain == "" {
				return fmt.Errorf("certificate %s: DNS authorization %s does not exist", id, a)
			}
			name, data := inventory.AuthorizationRecord(domain)
			if got := c.record(name, "CNAME"); got != data {
				return fmt.Errorf("certificate %s stays PROVISIONING: the CNAME %s -> %s of its DNS authorization does not resolve", id, name, data)
			}
		}
		return nil
	}
	return fmt.Errorf("certificate %s does not exist", id)
}

// Resolve is the address hostname's A record holds ("" when none).
func (c *Cloud) Resolve(hostname string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.record(hostname+".", "A")
}

// record is the first datum of the DNS record set of name and type ("" when none).
func (c *Cloud) record(name, typ string) string {
	for _, r := range c.resources {
		if r.typ == "gcp:dns/recordSet:RecordSet" && str(r.outputs, "name") == name && str(r.outputs, "type") == typ {
			if d := strs(r.outputs, "rrdatas"); len(d) > 0 {
				return d[0]
			}
		}
	}
	return ""
}

func (c *Cloud) bySelfLink(link string) *liveResource {
	for _, r := range c.resources {
		if link != "" && str(r.outputs, "selfLink") == link {
			return &r
		}
	}
	return nil
}

func str(m resource.PropertyMap, k string) string {
	if v, ok := m[resource.PropertyKey(k)]; ok && v.IsString() {
		return v.StringValue()
	}
	return ""
}

func strs(m resource.PropertyMap, k string) []string {
	v, ok := m[resource.PropertyKey(k)]
	if !ok || !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}
