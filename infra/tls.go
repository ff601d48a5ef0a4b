package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// newPlaceholderKey is the private key of the tls=acme placeholder certificate: an Ed25519 key
// made from crypto/rand on the stack's first `pulumi up` and kept in the state as a secret, so
// it is stable across runs without being derivable from anything public (it used to be a hash of
// the domain: anyone could have computed it and impersonated the site until certbot's first
// certificate). No provider of this project's plugins generates keys, so a command keeps it:
// `cat` of its (secret) stdin, whose later values are ignored, so the key of the first run
// stays; its stdout, marked secret, is the key. Nothing is logged.
func newPlaceholderKey(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	keyPEM, err := newEd25519KeyPEM()
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("placeholder key: %w", err)
	}
	return keptSecret(ctx, name, keyPEM, opts...)
}

// newEd25519KeyPEM is a new Ed25519 private key from crypto/rand, as PKCS#8 PEM.
func newEd25519KeyPEM() (string, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// placeholderCert is the self-signed certificate nginx serves with tls=acme until certbot has
// obtained the real one (nginx cannot start its TLS server without a certificate), signed with
// keyPEM (newPlaceholderKey). Ed25519 signatures and the fixed template make it the same bytes
// for the same key and domain, so the program's inputs do not change between runs. No client
// trusts it unless it pins it (the smoke check does).
func placeholderCert(domain, keyPEM string) (certPEM []byte, err error) {
	b, _ := pem.Decode([]byte(keyPEM))
	if b == nil {
		return nil, errors.New("placeholder key: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("placeholder key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("placeholder key: %T, want an Ed25519 key", k)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"notes placeholder (waiting for ACME)"}},
		DNSNames:              []string{domain},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2044, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(zeroReader{}, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
