// Package enginetest runs omscloud stacks on the real Pulumi engine (DESIGN.md, testing layer 5): the Pulumi CLI
// built by testtools/pulumi-build.sh, driven by the Automation API against a local file backend, with in-process
// stand-ins for the gcp, kubernetes, cloudflare and random providers.
//
// The stand-ins echo inputs and add the outputs real providers compute and omscloud reads (inventory.ComputeOutputs:
// the same table `omsctl plan` uses); random resources generate real random values, marked secret, so that a test
// can prove none of them reaches the state file in plain text. The gcp and kubernetes stand-ins share a behaviour
// model of the cloud (Cloud, cloud.go) and refuse what GCP would refuse on a first apply.
package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// PluginVersions are the provider versions the program's SDKs (pinned in go.mod) ask for.
var PluginVersions = map[string]string{
	"gcp":        "7.38.0",
	"kubernetes": "4.33.0",
	"cloudflare": "5.49.1",
	"random":     "4.19.2",
}

// Providers is a running set of stand-in providers, one gRPC server per package.
type Providers struct {
	// Cloud is the behaviour model the stand-ins share.
	Cloud   *Cloud
	ports   map[string]int
	cancels []chan bool
	secrets *secretLog
}

// StartProviders serves a stand-in for every package in PluginVersions on a free 127.0.0.1 port.
func StartProviders() (*Providers, error) {
	p := &Providers{Cloud: newCloud(), ports: map[string]int{}, secrets: &secretLog{}}
	for _, pkg := range slices.Sorted(func(yield func(string) bool) {
		for k := range PluginVersions {
			if !yield(k) {
				return
			}
		}
	}) {
		srv := &standIn{pkg: pkg, version: PluginVersions[pkg], secrets: p.secrets, cloud: p.Cloud}
		cancel := make(chan bool)
		h, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
			Cancel: cancel,
			Init: func(s *grpc.Server) error {
				pulumirpc.RegisterResourceProviderServer(s, srv)
				return nil
			},
		})
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("serve stand-in %s provider: %w", pkg, err)
		}
		p.ports[pkg], p.cancels = h.Port, append(p.cancels, cancel)
	}
	return p, nil
}

// Stop shuts the servers down.
func (p *Providers) Stop() {
	for _, c := range p.cancels {
		close(c)
	}
	p.cancels = nil
}

// DebugProviders is the PULUMI_DEBUG_PROVIDERS value that points the engine at the stand-ins.
func (p *Providers) DebugProviders() string {
	var parts []string
	for _, pkg := range slices.Sorted(func(yield func(string) bool) {
		for k := range p.ports {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s:%d", pkg, p.ports[pkg]))
	}
	return strings.Join(parts, ",")
}

// GeneratedSecrets returns every secret value the random stand-in has generated so far.
func (p *Providers) GeneratedSecrets() []string { return p.secrets.all() }

type secretLog struct {
	mu     sync.Mutex
	values []string
}

func (l *secretLog) add(v string) {
	l.mu.Lock()
	l.values = append(l.values, v)
	l.mu.Unlock()
}

func (l *secretLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.values)
}

// standIn is one package's provider.
type standIn struct {
	pulumirpc.UnimplementedResourceProviderServer
	pkg, version string
	secrets      *secretLog
	cloud        *Cloud
	mu           sync.Mutex
	config       map[string]string // the provider configuration (kubeOption)
}

var marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, KeepOutputValues: false}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, marshalOpts)
}

func marshal(pm resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(pm, marshalOpts)
}

func (p *standIn) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

func (p *standIn) Attach(context.Context, *pulumirpc.PluginAttach) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (p *standIn) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: p.version}, nil
}

func (p *standIn) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(`{"name":%q,"version":%q}`, p.pkg, p.version)}, nil
}

func (p *standIn) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *standIn) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *standIn) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	p.mu.Lock()
	p.config = map[string]string{}
	for k, v := range req.GetVariables() {
		p.config[k[strings.LastIndex(k, ":")+1:]] = v
	}
	p.mu.Unlock()
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (p *standIn) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Invoke answers the functions the behaviour model knows from the model, and any other with its arguments.
func (p *standIn) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	args, err := unmarshal(req.GetArgs())
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", req.GetTok(), err)
	}
	out, known, err := p.cloud.Invoke(req.GetTok(), args)
	if err != nil {
		return nil, err
	}
	if !known {
		return &pulumirpc.InvokeResponse{Return: req.GetArgs()}, nil
	}
	ret, err := marshal(out)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: ret}, nil
}

func (p *standIn) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", req.GetUrn(), err)
	}
	// The real Kubernetes provider names an object after its resource when metadata.name is unset.
	if p.pkg == "kubernetes" {
		meta := resource.PropertyMap{}
		m, has := news["metadata"]
		if has && m.IsObject() {
			meta = m.ObjectValue().Copy()
		}
		if _, named := meta["name"]; (!has || m.IsObject()) && !named {
			meta["name"] = resource.NewProperty(nameOf(req.GetUrn(), req.GetName()))
			news["metadata"] = resource.NewObjectProperty(meta)
		}
	}
	out, err := marshal(news)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: out}, nil
}

func (p *standIn) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", req.GetUrn(), err)
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", req.GetUrn(), err)
	}
	state, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", req.GetUrn(), err)
	}
	// Fields that force a replacement (replace.go).
	replaces, deleteFirst := p.replaces(typeOf(req.GetUrn(), req.GetType()), state, olds, news, req.GetIgnoreChanges())
	d := olds.Diff(news, func(k resource.PropertyKey) bool { return slices.Contains(req.GetIgnoreChanges(), string(k)) })
	var keys []string
	if d != nil {
		for _, k := range d.ChangedKeys() {
			keys = append(keys, string(k))
		}
	}
	for _, k := range replaces {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	slices.Sort(keys)
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: keys, Replaces: replaces,
		DeleteBeforeReplace: deleteFirst, DetailedDiff: detailedDiff(d, replaces), HasDetailedDiff: d != nil}, nil
}

// detailedDiff lists the changed input paths, as real providers do (the engine shows them and reports them in its
// events); a path under a key that forces a replacement is marked as replacing. It informs only: the engine replaces
// by the Replaces keys.
func detailedDiff(d *resource.ObjectDiff, replaces []string) map[string]*pulumirpc.PropertyDiff {
	if d == nil {
		return nil
	}
	out := map[string]*pulumirpc.PropertyDiff{}
	for path, pd := range plugin.NewDetailedDiffFromObjectDiff(d, true) {
		kind := pd.Kind
		if top, err := resource.ParsePropertyPath(path); err == nil && len(top) > 0 {
			if k, ok := top[0].(string); ok && slices.Contains(replaces, k) {
				kind = kind.AsReplace()
			}
		}
		out[path] = &pulumirpc.PropertyDiff{Kind: pulumirpc.PropertyDiff_Kind(kind), InputDiff: pd.InputDiff}
	}
	return out
}

func (p *standIn) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", req.GetUrn(), err)
	}
	typ, name := typeOf(req.GetUrn(), req.GetType()), nameOf(req.GetUrn(), req.GetName())
	outs := inputs.Copy()
	p.compute(typ, name, outs, req.GetPreview())
	id := ""
	if !req.GetPreview() {
		id = name + "-id"
		if err := p.apply(req.GetUrn(), typ, name, &id, inputs, outs, true); err != nil {
			return nil, err
		}
	}
	props, err := marshal(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (p *standIn) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	olds, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", req.GetUrn(), err)
	}
	oldInputs, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", req.GetUrn(), err)
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", req.GetUrn(), err)
	}
	// Computed outputs (those that were never inputs) survive an update, as they do in the cloud.
	outs := news.Copy()
	for k, v := range olds {
		if _, input := oldInputs[k]; !input {
			if _, set := outs[k]; !set {
				outs[k] = v
			}
		}
	}
	if !req.GetPreview() {
		id := req.GetId()
		if err := p.apply(req.GetUrn(), typeOf(req.GetUrn(), req.GetType()), nameOf(req.GetUrn(), req.GetName()), &id, news, outs, false); err != nil {
			return nil, err
		}
	}
	props, err := marshal(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

// Read (refresh) finds what changed in the cloud since the last apply (replace.go, refreshed). Without properties it
// is an import: the resource as the behaviour model holds it, or nothing (the engine then says it does not exist).
func (p *standIn) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	props, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.GetUrn(), err)
	}
	if len(props) == 0 && p.pkg == "gcp" {
		inputs, outputs, ok := p.cloud.Read(typeOf(req.GetUrn(), ""), req.GetId())
		if !ok {
			return &pulumirpc.ReadResponse{}, nil
		}
		ins, err := marshal(inputs)
		if err != nil {
			return nil, err
		}
		outs, err := marshal(outputs)
		if err != nil {
			return nil, err
		}
		return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: outs, Inputs: ins}, nil
	}
	out, err := marshal(refreshed(typeOf(req.GetUrn(), ""), props))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: out, Inputs: req.GetInputs()}, nil
}

func (p *standIn) Delete(_ context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if p.pkg == "gcp" {
		props, err := unmarshal(req.GetProperties())
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", req.GetUrn(), err)
		}
		if err := p.cloud.Delete(req.GetUrn(), typeOf(req.GetUrn(), req.GetType()), req.GetId(), props); err != nil {
			return nil, fmt.Errorf("%s: %w", req.GetUrn(), err)
		}
	}
	return &emptypb.Empty{}, nil
}

// apply runs a create or update through the behaviour model: GCP resources may be refused, get their real ids and
// the outputs GCP computes; Kubernetes objects may ask GCP for something (NEGs).
func (p *standIn) apply(urn, typ, name string, id *string, inputs, outs resource.PropertyMap, create bool) error {
	switch p.pkg {
	case "gcp":
		apply := p.cloud.Update
		if create {
			*id, apply = p.cloud.ID(urn, typ, name, inputs), p.cloud.Create
		}
		if err := apply(urn, typ, *id, inputs, outs); err != nil {
			return fmt.Errorf("%s: %w", urn, err)
		}
	case "kubernetes":
		p.cloud.KubernetesApplied(typ, inputs)
	}
	return nil
}

// compute adds the outputs that real providers compute and other resources consume. During a preview they are
// unknown, as with a real provider.
func (p *standIn) compute(typ, name string, state resource.PropertyMap, preview bool) {
	set := func(k string, v resource.PropertyValue) {
		if _, ok := state[resource.PropertyKey(k)]; ok {
			return
		}
		if preview {
			v = resource.MakeComputed(resource.NewProperty(""))
		}
		state[resource.PropertyKey(k)] = v
	}
	switch p.pkg {
	case "random":
		p.computeRandom(typ, state, set)
		return
	case "kubernetes":
		// The real provider answers with the live object, status included (empty for a Service without a load
		// balancer): outputs that read it are known after the create.
		set("status", resource.NewObjectProperty(resource.PropertyMap{}))
		return
	case "cloudflare":
		if typ == "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared" {
			set("cname", resource.NewProperty(name+"-id.cfargotunnel.com"))
			if _, ok := state["tunnelToken"]; !ok && !preview {
				token := randomText(64)
				p.secrets.add(token)
				state["tunnelToken"] = resource.MakeSecret(resource.NewProperty(token))
			}
			set("tunnelToken", resource.NewProperty(""))
		}
		return
	}
	computed := state.Copy()
	inventory.ComputeOutputs(typ, name, computed)
	for k, v := range computed {
		set(string(k), v)
	}
}

// computeRandom generates real random values. Passwords, strings and bytes are secrets: they are logged so that
// tests can look for them in the state file.
func (p *standIn) computeRandom(typ string, state resource.PropertyMap, set func(string, resource.PropertyValue)) {
	length := 16
	for _, k := range []resource.PropertyKey{"length", "byteLength"} {
		if v, ok := state[k]; ok && v.IsNumber() && v.NumberValue() > 0 {
			length = int(v.NumberValue())
		}
	}
	switch typ {
	case "random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString":
		if _, ok := state["result"]; ok {
			return
		}
		v := randomText(length)
		set("result", resource.MakeSecret(resource.NewProperty(v)))
		if v, ok := state["result"]; ok && v.IsSecret() {
			p.secrets.add(v.SecretValue().Element.StringValue())
		}
	case "random:index/randomBytes:RandomBytes":
		if _, ok := state["base64"]; ok {
			return
		}
		b := make([]byte, length)
		_, _ = rand.Read(b)
		set("base64", resource.MakeSecret(resource.NewProperty(base64.StdEncoding.EncodeToString(b))))
		set("hex", resource.MakeSecret(resource.NewProperty(hex.EncodeToString(b))))
		if v, ok := state["base64"]; ok && v.IsSecret() {
			p.secrets.add(base64.StdEncoding.EncodeToString(b))
			p.secrets.add(hex.EncodeToString(b))
		}
	case "random:index/randomId:RandomId":
		b := make([]byte, length)
		_, _ = rand.Read(b)
		set("hex", resource.NewProperty(hex.EncodeToString(b)))
		set("b64Std", resource.NewProperty(base64.StdEncoding.EncodeToString(b)))
		set("b64Url", resource.NewProperty(base64.RawURLEncoding.EncodeToString(b)))
		set("dec", resource.NewProperty(new(big.Int).SetBytes(b).String()))
	case "random:index/randomInteger:RandomInteger":
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<30))
		set("result", resource.NewProperty(float64(n.Int64())))
	}
}

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomText(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func typeOf(urn, typ string) string {
	if typ != "" {
		return typ
	}
	if u, err := resource.ParseURN(urn); err == nil {
		return string(u.Type())
	}
	return ""
}

func nameOf(urn, name string) string {
	if name != "" {
		return name
	}
	if u, err := resource.ParseURN(urn); err == nil {
		return u.Name()
	}
	return urn[strings.LastIndex(urn, "::")+2:]
}
