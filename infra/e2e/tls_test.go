//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
)

// testCert is a self-signed certificate for domain, in PEM, with a client that trusts it and
// reaches domain at 127.0.0.1 (the test cannot touch DNS).
type testCert struct {
	CertPEM, KeyPEM string
	Client          *http.Client
}

func newTestCert(t *testing.T, domain string) testCert {
	t.Helper()
	certPEM, keyPEM, err := nginx.SelfSignedCertificate([]string{domain}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("self-signed certificate does not parse")
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return testCert{
		CertPEM: string(certPEM),
		KeyPEM:  string(keyPEM),
		Client: &http.Client{
			Timeout: 10 * time.Second,
			// Redirects are checked, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					_, port, err := net.SplitHostPort(addr)
					if err != nil {
						return nil, err
					}
					return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
				},
			},
		},
	}
}
