package apis

import "errors"

// Services are the Google APIs an omscloud environment calls, each with the resources that need it. A project
// created by an organisation's automation may have none of them on, and a call to a disabled API answers 403
// SERVICE_DISABLED (https://cloud.google.com/service-usage/docs/enabled-service).
var Services = []string{
	"artifactregistry.googleapis.com",     // node pools pull the release image; repository IAM grants
	"certificatemanager.googleapis.com",   // the edge's TLS certificates, DNS authorizations and certificate map
	"cloudkms.googleapis.com",             // CMEK key rings, keys and their grants
	"cloudresourcemanager.googleapis.com", // project IAM grants and the project-number look-up
	"compute.googleapis.com",              // VPC, NAT, firewall, addresses, load balancer, Cloud Armor
	"container.googleapis.com",            // GKE cluster and node pools
	"dns.googleapis.com",                  // the edge's DNS records
	"iam.googleapis.com",                  // service accounts and Workload Identity bindings
	"iamcredentials.googleapis.com",       // Workload Identity: pods exchange tokens for service-account tokens
	"logging.googleapis.com",              // node, load balancer, NAT and firewall logs
	"monitoring.googleapis.com",           // node and workload metrics
	"secretmanager.googleapis.com",        // account passwords and the backup archive key
	"servicenetworking.googleapis.com",    // private services access for Cloud SQL's private IP
	"serviceusage.googleapis.com",         // enabling the others and generating service identities
	"sqladmin.googleapis.com",             // Cloud SQL instance, databases and users
	"storage.googleapis.com",              // backup and media buckets
}

// Args configures the APIs of one project.
type Args struct {
	Project string
}

// Validate reports a missing project.
func (a *Args) Validate() error {
	if a.Project == "" {
		return errors.New("apis: Project is required")
	}
	return nil
}
