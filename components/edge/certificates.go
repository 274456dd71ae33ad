package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/certificatemanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/dns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Certificates come from Certificate Manager with DNS authorization, which issues a certificate before the load
// balancer serves anything (https://cloud.google.com/certificate-manager/docs/domain-authorization). A
// load-balancer-authorized certificate, such as compute.ManagedSslCertificate, provisions only once DNS points at
// the load balancer: a first deploy, a new hostname and every DR load balancer would serve TLS errors until then.
//
// Each hostname has its own authorization, certificate and map entry, all named after the hostname alone: adding
// or removing a hostname creates or deletes only its own, and never replaces the certificate another hostname is
// serving. (One certificate for all hostnames would be replaced on every change, and its successor stays
// PROVISIONING, for up to an hour, while the map already serves it.)

// hostID names a hostname's resources within GCP's 64-character limit.
func hostID(hostname string) string {
	sum := sha256.Sum256([]byte(hostname))
	return hex.EncodeToString(sum[:4])
}

// certificateMapURI is how a target HTTPS proxy names a certificate map.
func certificateMapURI(id pulumi.StringInput) pulumi.StringOutput {
	return pulumi.Sprintf("//certificatemanager.googleapis.com/%s", id)
}

// certificates declares the certificate map and, per hostname, a DNS authorization, its CNAME in the DNS zone, a
// managed certificate and the map entry serving it. It returns the map's id.
func certificates(ctx *pulumi.Context, name string, a *Args, opts []pulumi.ResourceOption) (pulumi.StringOutput, error) {
	project := pulumi.String(a.Project)
	labels := pulumi.ToStringMap(a.Labels)
	certMap, err := certificatemanager.NewCertificateMapResource(ctx, name+"-certmap", &certificatemanager.CertificateMapResourceArgs{
		Project:     project,
		Name:        pulumi.String(a.Name),
		Description: pulumi.String("certificates of " + a.Name + "'s hostnames, also served by its DR load balancer"),
		Labels:      labels,
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("certificate map: %w", err)
	}
	for _, h := range a.Hostnames {
		id := pulumi.String(a.Name + "-" + hostID(h))
		authz, err := certificatemanager.NewDnsAuthorization(ctx, name+"-authz-"+h, &certificatemanager.DnsAuthorizationArgs{
			Project:     project,
			Name:        id,
			Domain:      pulumi.String(h),
			Description: pulumi.String("control of " + h + ", for its managed certificate"),
			// The CNAME is _acme-challenge.<hostname>, one per hostname in the zone.
			Type:   pulumi.String("FIXED_RECORD"),
			Labels: labels,
		}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("DNS authorization of %s: %w", h, err)
		}
		challenge := authz.DnsResourceRecords.ApplyT(func(rs []certificatemanager.DnsAuthorizationDnsResourceRecord) (certificatemanager.DnsAuthorizationDnsResourceRecord, error) {
			if len(rs) == 0 {
				return certificatemanager.DnsAuthorizationDnsResourceRecord{}, fmt.Errorf("DNS authorization of %s returned no dnsResourceRecords: Certificate Manager gives the CNAME to publish when it creates one", h)
			}
			return rs[0], nil
		}).(certificatemanager.DnsAuthorizationDnsResourceRecordOutput)
		cname, err := dns.NewRecordSet(ctx, name+"-authz-"+h, &dns.RecordSetArgs{
			Project:     pulumi.String(a.GCP.DNS.Project),
			ManagedZone: pulumi.String(a.GCP.DNS.ManagedZone),
			Name:        challenge.Name().Elem(),
			Type:        challenge.Type().Elem(),
			Rrdatas:     pulumi.StringArray{challenge.Data().Elem()},
			Ttl:         pulumi.Int(recordTTL),
		}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("DNS authorization record of %s: %w", h, err)
		}
		// After the CNAME: Certificate Manager validates through it, and a first attempt without it only delays issuance.
		cert, err := certificatemanager.NewCertificate(ctx, name+"-cert-"+h, &certificatemanager.CertificateArgs{
			Project:     project,
			Name:        id,
			Description: pulumi.String("TLS for " + h),
			Scope:       pulumi.String("DEFAULT"),
			Managed: certificatemanager.CertificateManagedArgs{
				Domains:           pulumi.StringArray{pulumi.String(h)},
				DnsAuthorizations: pulumi.StringArray{authz.ID()},
			},
			Labels: labels,
		}, append(slices.Clone(opts), pulumi.DependsOn([]pulumi.Resource{cname}))...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("certificate of %s: %w", h, err)
		}
		if _, err := certificatemanager.NewCertificateMapEntry(ctx, name+"-certmap-"+h, &certificatemanager.CertificateMapEntryArgs{
			Project:      project,
			Name:         id,
			Map:          certMap.Name,
			Hostname:     pulumi.String(h),
			Certificates: pulumi.StringArray{cert.ID()},
			Description:  pulumi.String("serves " + h),
			Labels:       labels,
		}, opts...); err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("certificate map entry of %s: %w", h, err)
		}
	}
	return certMap.ID().ToStringOutput(), nil
}

// addressRecords points every hostname's A record at target: the load balancer's address, or GCP.DNS.Target.
func addressRecords(ctx *pulumi.Context, name string, a *Args, target pulumi.StringInput, opts []pulumi.ResourceOption) error {
	for _, h := range a.Hostnames {
		if _, err := dns.NewRecordSet(ctx, name+"-a-"+h, &dns.RecordSetArgs{
			Project:     pulumi.String(a.GCP.DNS.Project),
			ManagedZone: pulumi.String(a.GCP.DNS.ManagedZone),
			Name:        pulumi.String(h + "."),
			Type:        pulumi.String("A"),
			Rrdatas:     pulumi.StringArray{target},
			Ttl:         pulumi.Int(recordTTL),
		}, opts...); err != nil {
			return fmt.Errorf("A record of %s: %w", h, err)
		}
	}
	return nil
}
