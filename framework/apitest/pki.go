package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the files of the control plane's certificates, all in one
// directory of the run: a CA, the API server's serving certificate for
// 127.0.0.1, an admin client certificate in group system:masters, and the
// service-account signing key kube-apiserver requires.
type pki struct {
	CAFile, ServingCertFile, ServingKeyFile      string
	ServiceAccountKeyFile, ServiceAccountPubFile string

	CAPEM, ClientCertPEM, ClientKeyPEM []byte
}

// certValidity covers any test run; the certificates are made anew for each
// environment.
const certValidity = 24 * time.Hour

// newPKI writes the certificates and keys into dir.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("apitest: create PKI directory %s: %w", dir, err)
	}
	now := time.Now()

	caKey, caPEM, caCert, err := newCA(now)
	if err != nil {
		return nil, err
	}
	servingPEM, servingKeyPEM, err := newLeaf(caCert, caKey, now, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	// system:masters is bound to cluster-admin by the API server's bootstrap
	// RBAC policy, so the client may do anything.
	clientPEM, clientKeyPEM, err := newLeaf(caCert, caKey, now, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "apitest-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("apitest: generate service-account key: %w", err)
	}
	saKeyPEM, err := keyPEM(saKey)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("apitest: encode service-account public key: %w", err)
	}

	p := &pki{
		CAFile:                filepath.Join(dir, "ca.crt"),
		ServingCertFile:       filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:        filepath.Join(dir, "apiserver.key"),
		ServiceAccountKeyFile: filepath.Join(dir, "sa.key"),
		ServiceAccountPubFile: filepath.Join(dir, "sa.pub"),
		CAPEM:                 caPEM, ClientCertPEM: clientPEM, ClientKeyPEM: clientKeyPEM,
	}
	files := map[string][]byte{
		p.CAFile:                caPEM,
		p.ServingCertFile:       servingPEM,
		p.ServingKeyFile:        servingKeyPEM,
		p.ServiceAccountKeyFile: saKeyPEM,
		p.ServiceAccountPubFile: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("apitest: write %s: %w", path, err)
		}
	}
	return p, nil
}

func newCA(now time.Time) (*ecdsa.PrivateKey, []byte, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("apitest: generate CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vmnet-e2e apitest CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("apitest: sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("apitest: parse CA certificate: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// newLeaf signs template with the CA and returns the certificate and its new
// key, PEM-encoded.
func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time, template *x509.Certificate) (certPEM, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("apitest: generate key for %s: %w", template.Subject.CommonName, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	template.SerialNumber = serial
	template.NotBefore = now.Add(-time.Minute)
	template.NotAfter = now.Add(certValidity)
	template.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("apitest: sign certificate for %s: %w", template.Subject.CommonName, err)
	}
	keyPEMBytes, err = keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEMBytes, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("apitest: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("apitest: draw certificate serial number: %w", err)
	}
	return serial, nil
}
