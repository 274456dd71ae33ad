// Package cmek declares a customer-managed encryption key the way every omscloud component needs one: a key ring and
// a key in the data's location, rotated, with destroyed versions restorable for 30 days, and the Google service agent
// that encrypts with it granted before anything asks it to.
package cmek

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/kms"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// MaxRotationDays is the longest rotation period omscloud allows, and the default.
const MaxRotationDays = 90

// Args name a key. Logical names are the callers' own, so that existing keys keep their URNs: a KMS key ring or key
// can never be deleted, only abandoned.
type Args struct {
	// RingLogical, KeyLogical and GrantLogical are the Pulumi logical names.
	RingLogical, KeyLogical, GrantLogical string
	Project, Location                     string
	// Name is the key ring's and key's name.
	Name         string
	RotationDays int
	Labels       map[string]string
	// Agent is the service agent's email (it may come from a look-up or a service identity).
	Agent pulumi.StringInput
	// Protect protects the ring and the key: a lost key makes everything it encrypted unreadable.
	Protect bool
	// Adopt keeps the ring and the key in GCP when the stack drops them (they cannot be deleted anyway: the provider
	// only forgets a key ring, and a key's name is never freed) and adopts them when they already exist, so that an
	// environment that is torn down and declared again under the same names (a DR environment) reuses its keys
	// instead of failing with "already exists". It looks them up in Project, which must have Cloud KMS enabled.
	Adopt bool
	// Parent is the component the look-ups inherit their provider from (with Adopt).
	Parent pulumi.Resource
}

// Key is the declared key and the grant a consumer must wait for.
type Key struct {
	Key   *kms.CryptoKey
	Grant *kms.CryptoKeyIAMMember
}

// New declares the key ring, the key and the agent's grant with opts (parent, dependencies).
func New(ctx *pulumi.Context, a Args, opts ...pulumi.ResourceOption) (*Key, error) {
	rotation := a.RotationDays
	if rotation == 0 {
		rotation = MaxRotationDays
	}
	protected := append(opts, pulumi.Protect(a.Protect))
	ringOpts, keyOpts := protected, protected
	if a.Adopt {
		ringID, keyID, err := existing(ctx, a)
		if err != nil {
			return nil, err
		}
		ringOpts = append(adoptOptions(protected, ringID), pulumi.RetainOnDelete(true))
		keyOpts = append(adoptOptions(protected, keyID), pulumi.RetainOnDelete(true))
	}
	ring, err := kms.NewKeyRing(ctx, a.RingLogical, &kms.KeyRingArgs{
		Project:  pulumi.String(a.Project),
		Name:     pulumi.String(a.Name),
		Location: pulumi.String(a.Location),
	}, ringOpts...)
	if err != nil {
		return nil, err
	}
	key, err := kms.NewCryptoKey(ctx, a.KeyLogical, &kms.CryptoKeyArgs{
		Name:           pulumi.String(a.Name),
		KeyRing:        ring.ID(),
		Purpose:        pulumi.String("ENCRYPT_DECRYPT"),
		RotationPeriod: pulumi.String(strconv.Itoa(rotation*86400) + "s"),
		// A destroyed key makes everything it encrypted unreadable: keep destroyed versions restorable 30 days.
		DestroyScheduledDuration: pulumi.String("2592000s"),
		Labels:                   pulumi.ToStringMap(a.Labels),
	}, keyOpts...)
	if err != nil {
		return nil, err
	}
	grant, err := kms.NewCryptoKeyIAMMember(ctx, a.GrantLogical, &kms.CryptoKeyIAMMemberArgs{
		CryptoKeyId: key.ID(),
		Role:        pulumi.String("roles/cloudkms.cryptoKeyEncrypterDecrypter"),
		Member:      pulumi.Sprintf("serviceAccount:%s", a.Agent),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Key{Key: key, Grant: grant}, nil
}

func adoptOptions(opts []pulumi.ResourceOption, id string) []pulumi.ResourceOption {
	out := append([]pulumi.ResourceOption(nil), opts...)
	if id != "" {
		out = append(out, pulumi.Import(pulumi.ID(id)))
	}
	return out
}

// existing looks the key ring and key up: their ids when they exist, "" when not. The provider's data sources fail
// with "<id> not found" for a missing one (terraform-provider-google data_source_google_kms_key_ring.go and
// data_source_google_kms_crypto_key.go); any other error is the look-up's own and stops the program.
func existing(ctx *pulumi.Context, a Args) (ringID, keyID string, err error) {
	if a.Parent == nil {
		return "", "", fmt.Errorf("key %s: Adopt needs Parent, whose provider the look-ups use", a.Name)
	}
	project := a.Project
	ring, err := kms.GetKMSKeyRing(ctx, &kms.GetKMSKeyRingArgs{Project: &project, Location: a.Location, Name: a.Name}, pulumi.Parent(a.Parent))
	switch {
	case notFound(err):
		return "", "", nil
	case err != nil:
		return "", "", fmt.Errorf("look up key ring %s in %s: %w", a.Name, a.Location, err)
	case ring.Id == "":
		return "", "", nil
	}
	key, err := kms.GetKMSCryptoKey(ctx, &kms.GetKMSCryptoKeyArgs{KeyRing: ring.Id, Name: a.Name}, pulumi.Parent(a.Parent))
	switch {
	case notFound(err):
		return ring.Id, "", nil
	case err != nil:
		return "", "", fmt.Errorf("look up key %s of %s: %w", a.Name, ring.Id, err)
	}
	return ring.Id, key.Id, nil
}

func notFound(err error) bool { return err != nil && strings.Contains(err.Error(), " not found") }
