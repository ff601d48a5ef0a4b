package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"
)

// The registry's certificates: the CA verifies the server certificate for the host it was made
// for and no other, the key matches, and the same keys and host give the same bytes.
func TestRegistryCerts(t *testing.T) {
	ctxKeys := func() string {
		t.Helper()
		var keys string
		for range 2 {
			k, err := newEd25519KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			keys += k
		}
		return keys
	}
	keys := ctxKeys()
	for _, tc := range []struct{ host, other string }{{"10.0.0.11", "10.0.0.12"}, {"manager.example.org", "other.example.org"}} {
		t.Run(tc.host, func(t *testing.T) {
			got, err := registryCerts(keys, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			again, err := registryCerts(keys, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			if again != got {
				t.Error("the same keys and host gave other certificates")
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(got.CA)) {
				t.Fatal("CA is not a PEM certificate")
			}
			b, _ := pem.Decode([]byte(got.Cert))
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			opts := x509.VerifyOptions{Roots: pool, DNSName: tc.host, CurrentTime: at}
			if _, err := cert.Verify(opts); err != nil {
				t.Errorf("server certificate for %s: %v", tc.host, err)
			}
			opts.DNSName = tc.other
			if _, err := cert.Verify(opts); err == nil {
				t.Errorf("server certificate verifies for %s too", tc.other)
			}
			if _, err := tls.X509KeyPair([]byte(got.Cert), []byte(got.Key)); err != nil {
				t.Errorf("certificate and key: %v", err)
			}
			if net.ParseIP(tc.host) != nil && len(cert.IPAddresses) != 1 {
				t.Errorf("IP SANs = %v", cert.IPAddresses)
			}
			// Another address keeps the CA (the nodes' trust stays).
			moved, err := registryCerts(keys, tc.other)
			if err != nil {
				t.Fatal(err)
			}
			if moved.CA != got.CA || moved.Cert == got.Cert {
				t.Error("a new address changed the CA or kept the server certificate")
			}
		})
	}
	if _, err := registryCerts("not pem", "h"); err == nil {
		t.Error("registryCerts accepted keys that are not PEM")
	}
}
