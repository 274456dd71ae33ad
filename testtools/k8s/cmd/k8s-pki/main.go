// Command k8s-pki writes the throwaway PKI a loopback-only test control plane needs: a cluster
// CA, the apiserver serving certificate, client certificates for the admin (system:masters),
// controller-manager and scheduler, a front-proxy CA and client (the --requestheader-* flags),
// and the service-account signing key pair. Keys are ECDSA P-256; everything lives one day.
//
//	k8s-pki -dir /tmp/cluster/pki
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type writer struct {
	dir string
	now time.Time
}

func main() {
	dir := flag.String("dir", "", "directory to write the PKI into (created if missing)")
	serviceIP := flag.String("service-ip", "10.0.0.1", "first address of the service CIDR (the kubernetes Service)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "k8s-pki: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *serviceIP); err != nil {
		slog.Error("k8s-pki failed", "err", err)
		os.Exit(1)
	}
}

func run(dir, serviceIP string) error {
	svc := net.ParseIP(serviceIP)
	if svc == nil {
		return fmt.Errorf("-service-ip %q is not an IP address", serviceIP)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	w := writer{dir: dir, now: time.Now().Add(-time.Hour)}

	ca, err := w.issue("ca", &x509.Certificate{Subject: pkix.Name{CommonName: "omscloud-test-ca"}, IsCA: true}, nil)
	if err != nil {
		return err
	}
	frontCA, err := w.issue("front-proxy-ca", &x509.Certificate{Subject: pkix.Name{CommonName: "omscloud-test-front-proxy-ca"}, IsCA: true}, nil)
	if err != nil {
		return err
	}
	leaves := []struct {
		name   string
		parent *keyPair
		tmpl   *x509.Certificate
	}{
		{"apiserver", ca, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-apiserver"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), svc},
		}},
		{"admin", ca, client("omscloud-admin", "system:masters")},
		{"controller-manager", ca, client("system:kube-controller-manager")},
		{"scheduler", ca, client("system:kube-scheduler")},
		{"front-proxy-client", frontCA, client("front-proxy-client")},
	}
	for _, l := range leaves {
		if _, err := w.issue(l.name, l.tmpl, l.parent); err != nil {
			return err
		}
	}

	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	if err := w.writeKey("sa.key", sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal service-account public key: %w", err)
	}
	return w.writePEM("sa.pub", "PUBLIC KEY", pub, 0o644)
}

func client(cn string, groups ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// issue signs tmpl with parent (self-signed when parent is nil) and writes NAME.crt and NAME.key.
func (w writer) issue(name string, tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("serial for %s: %w", name, err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = w.now
	tmpl.NotAfter = w.now.Add(25 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if tmpl.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.BasicConstraintsValid = true
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse %s certificate: %w", name, err)
	}
	if err := w.writePEM(name+".crt", "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := w.writeKey(name+".key", key); err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

func (w writer) writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", file, err)
	}
	return w.writePEM(file, "EC PRIVATE KEY", der, 0o600)
}

func (w writer) writePEM(file, typ string, der []byte, mode os.FileMode) error {
	path := filepath.Join(w.dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
