package enginetest

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// SQLServer is a real PostgreSQL server standing in for every Cloud SQL instance: the instance answers with its
// address and CA, and users and databases declared through the API exist on it, as Cloud SQL creates them
// (https://cloud.google.com/sql/docs/postgres/users: an API-created user has CREATEROLE and CREATEDB and belongs to
// cloudsqlsuperuser, which owns the API-created databases).
type SQLServer struct {
	// PrivateIP is the instance's privateIpAddress: where the workloads connect (port 5432).
	PrivateIP string
	// CACertPEM is the server CA (serverCaCerts[0].cert) the clients verify the server against.
	CACertPEM string
	// CreateUser sets a user's password, creating it (a member of cloudsqlsuperuser) if needed.
	CreateUser func(name, password string) error
	// CreateDatabase creates a database if it does not exist.
	CreateDatabase func(name string) error
}

// SetSQLServer makes every Cloud SQL instance, user and database from now on live on s.
func (c *Cloud) SetSQLServer(s SQLServer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sqlServer = &s
}

// apply does on the server what the Cloud SQL API does (nothing without a server).
func (s *SQLServer) apply(typ string, inputs, outputs resource.PropertyMap) error {
	if s == nil {
		return nil
	}
	switch typ {
	case sqlInstance:
		outputs["privateIpAddress"] = resource.NewProperty(s.PrivateIP)
		outputs["serverCaCerts"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(
			resource.PropertyMap{"cert": resource.NewProperty(s.CACertPEM)})})
	case "gcp:sql/user:User":
		password := ""
		if v, ok := inputs["password"]; ok {
			if v.IsSecret() {
				v = v.SecretValue().Element
			}
			if v.IsString() {
				password = v.StringValue()
			}
		}
		if err := s.CreateUser(str(inputs, "name"), password); err != nil {
			return fmt.Errorf("googleapi: Error 400: user %s: %v", str(inputs, "name"), err)
		}
	case "gcp:sql/database:Database":
		if err := s.CreateDatabase(str(inputs, "name")); err != nil {
			return fmt.Errorf("googleapi: Error 400: database %s: %v", str(inputs, "name"), err)
		}
	}
	return nil
}
