package postgres

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// VerifyServerCA returns rawURL set to verify the server's certificate against the CA certificate(s) in caFile
// (PEM): sslmode=verify-ca (verify-full if rawURL asks for it) and sslrootcert=caFile. Account pools and
// pg_dump derive their connections from this URL, so they verify the same way. Only the query changes.
//
// verify-ca, not verify-full: with the default per-instance CA, a Cloud SQL server certificate names the instance
// ("<project>:<instance>"), not the private IP the runtime connects to, so only its chain can be checked
// (https://cloud.google.com/sql/docs/postgres/authorize-ssl, "Certificate authority (CA) hierarchies").
func VerifyServerCA(rawURL, caFile string) (string, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return "", fmt.Errorf("read CA file: %w", err)
	}
	if n := countCertificates(pemBytes); n == 0 {
		return "", fmt.Errorf("%s holds no PEM certificate: give the database server's CA certificate", caFile)
	}
	abs, err := filepath.Abs(caFile)
	if err != nil {
		return "", fmt.Errorf("CA file: %w", err)
	}
	base, rawQuery, _ := strings.Cut(rawURL, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", errors.New("database URL: its query is not valid") // the URL may hold a password: don't echo it
	}
	if q.Get("sslmode") != "verify-full" {
		q.Set("sslmode", "verify-ca")
	}
	q.Set("sslrootcert", abs)
	return base + "?" + q.Encode(), nil
}

func countCertificates(b []byte) int {
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return n
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err == nil {
				n++
			}
		}
	}
}

// IsServerCertificateError reports whether err is the server's certificate failing verification: signed by
// another CA, expired, or (verify-full) naming another host.
func IsServerCertificateError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verifyErr)
}
