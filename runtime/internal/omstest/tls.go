package omstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

// CA is a certificate authority made for a test.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File holds the CA certificate (PEM), as the runtime's --db-ca-file.
	File string
}

// NewCA creates a CA named cn and writes its certificate to a file in a temporary directory.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "server-ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return &CA{cert: cert, key: key, File: file}
}

// ServerTLS issues a server certificate the way Cloud SQL's per-instance CA does: it names the instance
// ("project:instance"), not an address, so only sslmode=verify-ca can accept it.
func (ca *CA) ServerTLS(t testing.TB) *localenv.PostgresTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "mock-project:oms-db"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return &localenv.PostgresTLS{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// TLSPostgres starts a PostgreSQL of its own (no standby) serving TLS with a certificate from ca, stopped at
// cleanup. Its URL carries sslmode=disable, for the test's own set-up; the runtime under test is given the CA.
func TLSPostgres(t testing.TB, ca *CA) *localenv.Postgres {
	t.Helper()
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	dir, err := os.MkdirTemp("", "omstest-pgtls-")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: dir, TLS: ca.ServerTLS(t), Settings: settings})
	if err != nil {
		_ = os.RemoveAll(dir)
	}
	require.NoError(t, err, "start postgres with TLS")
	t.Cleanup(func() {
		_ = p.Stop()
		_ = os.RemoveAll(dir)
	})
	return p
}
