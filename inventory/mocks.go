package inventory

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Mocks records every resource a program registers and fakes the outputs providers would compute, so that
// dependent resources see plausible values. It implements pulumi.MockResourceMonitor.
type Mocks struct {
	Project, Stack string

	mu        sync.Mutex
	resources []Resource
}

var _ pulumi.MockResourceMonitor = (*Mocks)(nil)

// Resources returns what has been recorded so far.
func (m *Mocks) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Resource(nil), m.resources...)
}

// NewResource records the resource and returns its fake ID and state.
func (m *Mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	parentURN := ""
	var deps []string
	var protected bool
	var aliases []*pulumirpc.Alias
	if args.RegisterRPC != nil {
		parentURN = args.RegisterRPC.GetParent()
		deps = args.RegisterRPC.GetDependencies()
		protected = args.RegisterRPC.GetProtect()
		aliases = args.RegisterRPC.GetAliases()
	}
	if strings.Contains(parentURN, "::pulumi:pulumi:Stack::") {
		parentURN = ""
	}
	m.mu.Lock()
	m.resources = append(m.resources, Resource{
		Type:      args.TypeToken,
		Name:      args.Name,
		Parent:    nameOfURN(parentURN),
		Inputs:    plainMap(args.Inputs),
		URN:       string(m.urn(parentURN, args.TypeToken, args.Name)),
		ParentURN: parentURN,
		DependsOn: deps,
		Protected: protected,
		Aliases:   m.aliasURNs(aliases, parentURN, args.TypeToken, args.Name),
	})
	m.mu.Unlock()

	state := args.Inputs.Copy()
	id := args.Name + "-id"
	ComputeOutputs(args.TypeToken, args.Name, state)
	return id, state, nil
}

// Call answers the provider functions omscloud programs call with plausible results.
func (m *Mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	project := "mock-project"
	if p, ok := args.Args["project"]; ok && p.IsString() {
		project = p.StringValue()
	} else if p, ok := args.Args["projectId"]; ok && p.IsString() {
		project = p.StringValue()
	}
	switch args.Token {
	case "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup":
		// The NEG GKE would have created from the runtime's Service.
		zone, name := args.Args["zone"].StringValue(), args.Args["name"].StringValue()
		return resource.NewPropertyMapFromMap(map[string]any{
			"name": name, "zone": zone, "project": project,
			"selfLink": fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/zones/%s/networkEndpointGroups/%s", project, zone, name),
		}), nil
	case "gcp:organizations/getProject:getProject":
		return resource.PropertyMap{"projectId": resource.NewProperty(project), "number": resource.NewProperty(ProjectNumber(project))}, nil
	case "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
		email := fmt.Sprintf("service-%s@gs-project-accounts.iam.gserviceaccount.com", ProjectNumber(project))
		return resource.PropertyMap{
			"project": resource.NewProperty(project), "emailAddress": resource.NewProperty(email),
			"member": resource.NewProperty("serviceAccount:" + email),
		}, nil
	}
	return resource.PropertyMap{}, nil
}

// AuthorizationRecord is the CNAME record (name and data) Certificate Manager asks for to prove control of domain
// (https://cloud.google.com/certificate-manager/docs/dns-authorizations).
func AuthorizationRecord(domain string) (name, data string) {
	h := fnv.New32a()
	h.Write([]byte(domain))
	return "_acme-challenge." + domain + ".", fmt.Sprintf("%08x.1.authorize.certificatemanager.goog.", h.Sum32())
}

// ProjectNumber is the number the fakes give a project: twelve digits derived from its id, stable across runs.
func ProjectNumber(project string) string {
	h := fnv.New64a()
	h.Write([]byte(project))
	return fmt.Sprintf("%012d", 100000000000+h.Sum64()%900000000000)
}

// urn computes a resource's URN the way the engine does: the parent's type qualifies the child's.
func (m *Mocks) urn(parentURN, typ, name string) resource.URN {
	return newURN(m.Stack, m.Project, parentURN, typ, name)
}

func newURN(stack, project, parentURN, typ, name string) resource.URN {
	parentType := tokens.Type("")
	if parentURN != "" {
		if u, err := resource.ParseURN(parentURN); err == nil {
			parentType = u.QualifiedType()
		}
	}
	return resource.NewURN(tokens.QName(stack), tokens.PackageName(project), parentType, tokens.Type(typ), name)
}

// aliasURNs resolves aliases the way the engine does: a spec's empty name, type, stack or project is the resource's
// own, and its parent is the one it names, none (the stack), or else the resource's current parent.
func (m *Mocks) aliasURNs(aliases []*pulumirpc.Alias, parentURN, typ, name string) []string {
	var out []string
	for _, a := range aliases {
		if urn := a.GetUrn(); urn != "" {
			out = append(out, urn)
			continue
		}
		spec := a.GetSpec()
		if spec == nil {
			continue
		}
		or := func(v, def string) string {
			if v == "" {
				return def
			}
			return v
		}
		parent := parentURN
		switch {
		case spec.GetNoParent():
			parent = ""
		case spec.GetParentUrn() != "":
			parent = spec.GetParentUrn()
		}
		if strings.Contains(parent, "::pulumi:pulumi:Stack::") {
			parent = ""
		}
		urn := newURN(or(spec.GetStack(), m.Stack), or(spec.GetProject(), m.Project), parent, or(spec.GetType(), typ), or(spec.GetName(), name))
		out = append(out, string(urn))
	}
	return out
}

// nameOfURN returns the resource name of a URN, or "" for the stack itself.
func nameOfURN(urn string) string {
	if urn == "" || strings.Contains(urn, "::pulumi:pulumi:Stack::") {
		return ""
	}
	return urn[strings.LastIndex(urn, "::")+2:]
}

// ComputeOutputs adds to state the outputs that real providers compute and other resources consume, with plausible
// values; inputs already in state are kept. The engine tests' stand-in providers answer the same.
func ComputeOutputs(typ, name string, state resource.PropertyMap) {
	set := func(k string, v any) {
		if _, ok := state[resource.PropertyKey(k)]; !ok {
			state[resource.PropertyKey(k)] = resource.NewPropertyValue(v)
		}
	}
	physical := name
	if n, ok := state["name"]; ok && n.IsString() {
		physical = n.StringValue()
	}
	project := "mock-project"
	if p, ok := state["project"]; ok && p.IsString() {
		project = p.StringValue()
	}
	set("name", physical)
	switch typ {
	case "gcp:container/cluster:Cluster":
		set("endpoint", "203.0.113.10")
		state["masterAuth"] = resource.NewObjectProperty(resource.PropertyMap{
			"clusterCaCertificate": resource.NewProperty(base64.StdEncoding.EncodeToString([]byte("mock CA of " + physical))),
		})
	case "gcp:serviceaccount/account:Account":
		if id, ok := state["accountId"]; ok && id.IsString() {
			set("email", fmt.Sprintf("%s@%s.iam.gserviceaccount.com", id.StringValue(), project))
		}
	case "gcp:projects/serviceIdentity:ServiceIdentity":
		service := "service"
		if sv, ok := state["service"]; ok && sv.IsString() {
			service = strings.SplitN(sv.StringValue(), ".", 2)[0]
		}
		set("email", fmt.Sprintf("service-123456789@gcp-sa-%s.iam.gserviceaccount.com", service))
	case "gcp:sql/databaseInstance:DatabaseInstance":
		set("connectionName", fmt.Sprintf("%s:region:%s", project, physical))
		set("privateIpAddress", "10.30.0.3")
		state["serverCaCerts"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(resource.PropertyMap{
			"cert": resource.NewProperty("-----BEGIN CERTIFICATE-----\nmock server CA of " + physical + "\n-----END CERTIFICATE-----\n"),
		})})
	case "gcp:compute/globalAddress:GlobalAddress", "gcp:compute/address:Address":
		set("address", "203.0.113.20")
	case "gcp:certificatemanager/dnsAuthorization:DnsAuthorization":
		if d, ok := state["domain"]; ok && d.IsString() {
			record, data := AuthorizationRecord(d.StringValue())
			state["dnsResourceRecords"] = resource.NewArrayProperty([]resource.PropertyValue{
				resource.NewObjectProperty(resource.PropertyMap{
					"name": resource.NewProperty(record), "type": resource.NewProperty("CNAME"), "data": resource.NewProperty(data),
				}),
			})
		}
	case "random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString":
		set("result", "mock-generated-"+name)
	case "random:index/randomId:RandomId":
		set("hex", "00112233445566778899aabbccddeeff")
		set("b64Std", base64.StdEncoding.EncodeToString([]byte("mock-random-id-"+name)))
	}
	kind := strings.ToLower(typ[strings.LastIndex(typ, ":")+1:])
	set("selfLink", fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/%ss/%s", project, kind, physical))
}

// plainMap turns engine property values into plain data for the inventory; secrets never leave as values.
func plainMap(pm resource.PropertyMap) map[string]any {
	out := make(map[string]any, len(pm))
	for k, v := range pm {
		if strings.HasPrefix(string(k), "__") {
			continue // engine bookkeeping such as __defaults
		}
		out[string(k)] = plain(v)
	}
	return out
}

func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return Secret
	case v.IsComputed():
		return Unknown
	case v.IsOutput():
		o := v.OutputValue()
		if o.Secret {
			return Secret
		}
		if !o.Known {
			return Unknown
		}
		return plain(o.Element)
	case v.IsResourceReference():
		return nameOfURN(string(v.ResourceReferenceValue().URN))
	case v.IsObject():
		return plainMap(v.ObjectValue())
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = plain(e)
		}
		return out
	case v.IsNull():
		return nil
	default:
		return v.V
	}
}
