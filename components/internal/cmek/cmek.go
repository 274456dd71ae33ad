// Package cmek declares a customer-managed encryption key the way every omscloud component needs one: a key ring and
// a key in the data's location, rotated, with destroyed versions restorable for 30 days, and the Google service agent
// that encrypts with it granted before anything asks it to.
package cmek

import (
	"strconv"

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
	ring, err := kms.NewKeyRing(ctx, a.RingLogical, &kms.KeyRingArgs{
		Project:  pulumi.String(a.Project),
		Name:     pulumi.String(a.Name),
		Location: pulumi.String(a.Location),
	}, protected...)
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
	}, protected...)
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
