package main

import (
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
)

func TestValidateDomain(t *testing.T) {
	for _, tc := range []struct {
		domain string
		ok     bool
	}{
		{"notes.example.com", true},
		{"a.b", true},
		{"xn--bcher-kva.example", true},
		{"NOTES.Example.COM", true},
		{"a-b.example.com", true},
		{strings.Repeat("a", 63) + ".com", true},
		{strings.Repeat(strings.Repeat("a", 62)+".", 4) + "aa", false}, // 254 characters
		{strings.Repeat("a", 64) + ".com", false},
		{"localhost", false},
		{"-a.example.com", false},
		{"a-.example.com", false},
		{"a..example.com", false},
		{"example.com.", false},
		{".example.com", false},
		{"a_b.example.com", false},
		{"a b.example.com", false},
		{"notes.example.com;", false},
		{"notes.example.com'$(id)'", false},
		{"*.example.com", false},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			c := validConfig(t)
			c.Domain = tc.domain
			err := c.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "notes:domain")) {
				t.Errorf("Validate error %v does not name notes:domain", err)
			}
		})
	}
	// The 253-character limit itself.
	long := strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a"
	if len(long) != 253 || !validDNSName(long, 2) {
		t.Errorf("253-character name (len %d) refused", len(long))
	}
}

func TestValidateACMEEmail(t *testing.T) {
	for _, tc := range []struct {
		email string
		ok    bool
	}{
		{"admin@example.com", true},
		{"first.last+notes@mail.example.org", true},
		{"", false},
		{"admin", false},
		{"admin@", false},
		{"@example.com", false},
		{"admin@localhost", false},
		{"admin@-x.example.com", false},
		{"Admin <admin@example.com>", false},
		{"<admin@example.com>", false},
		{"admin@example.com (Admin)", false},
		{"admin@example.com, other@example.com", false},
		{`"a b"@example.com`, false},
		{"a b@example.com", false},
		{"admin@exa mple.com", false},
		{"admin@[10.0.0.1]", false},
	} {
		t.Run(tc.email, func(t *testing.T) {
			c := validConfig(t)
			c.TLS = nginx.TLSACME
			c.HTTPPort = 80
			c.Domain = "notes.example.com"
			c.ACMEEmail = tc.email
			err := c.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "notes:acmeEmail")) {
				t.Errorf("Validate error %v does not name notes:acmeEmail", err)
			}
		})
	}
}

// validConfig is a minimal valid plain configuration.
func validConfig(t *testing.T) *Config {
	t.Helper()
	return &Config{
		Stack: "s", DockerHost: mustDockerHost(t, "unix:///var/run/docker.sock"), Replicas: 1, AppVersion: "dev",
		ImageName: "notes-service", GoImage: "golang:1.26", NginxImage: "nginx:1.27",
		PostgresImage: "postgres:17", CertbotImage: "certbot/certbot:v3.0.1",
		ServiceMemoryMB: 256, DBMemoryMB: 1024, ServiceCPUs: "1", LogLevel: "info",
		DrainDelay: 5e9, ShutdownTimeout: 15e9, StartTimeout: 120e9, BindAddress: "0.0.0.0",
		HTTPPort: 80, HTTPSPort: 443, TLS: nginx.TLSOff, DBName: "notes", DBOwner: "notes",
		BackupInterval: 3600e9, BackupKeep: 7, DBHealthInterval: 5e9, Engine: EngineContainers, WriteAuth: WriteAuthModify,
		DBPoolSize: 4, DBMaxConnections: 100,
	}
}

func mustDockerHost(t *testing.T, s string) DockerHost {
	t.Helper()
	h, err := ParseDockerHost(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestValidateACMEServerAndCABundle(t *testing.T) {
	cert, key, err := nginx.SelfSignedCertificate([]string{"ca.example.com"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := string(cert) + string(cert)
	for _, tc := range []struct {
		name    string
		tls     nginx.TLSMode
		server  string
		staging bool
		bundle  string
		key     string // the key the error names; "" = valid
	}{
		{"default", nginx.TLSACME, "", false, "", ""},
		{"staging", nginx.TLSACME, "", true, "", ""},
		{"private CA", nginx.TLSACME, "https://ca.internal:9000/acme/acme/directory", false, bundle, ""},
		{"server and staging", nginx.TLSACME, "https://ca.internal/dir", true, "", "notes:acmeStaging"},
		{"http server", nginx.TLSACME, "http://ca.internal/dir", false, "", "notes:acmeServer"},
		{"no host", nginx.TLSACME, "https:///dir", false, "", "notes:acmeServer"},
		{"user info", nginx.TLSACME, "https://u:p@ca.internal/dir", false, "", "notes:acmeServer"},
		{"space", nginx.TLSACME, "https://ca.internal/dir --staging", false, "", "notes:acmeServer"},
		{"not a URL", nginx.TLSACME, "ca.internal", false, "", "notes:acmeServer"},
		{"bundle not PEM", nginx.TLSACME, "", false, "hello", "notes:acmeCaBundle"},
		{"bundle with a key", nginx.TLSACME, "", false, string(cert) + string(key), "notes:acmeCaBundle"},
		{"bundle with trailing text", nginx.TLSACME, "", false, string(cert) + "junk", "notes:acmeCaBundle"},
		{"bundle of garbage", nginx.TLSACME, "", false, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "notes:acmeCaBundle"},
		{"server without acme", nginx.TLSOff, "https://ca.internal/dir", false, "", "notes:acmeServer"},
		{"bundle without acme", nginx.TLSProvided, "", false, bundle, "notes:acmeCaBundle"},
		{"staging without acme", nginx.TLSOff, "", true, "", "notes:acmeStaging"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			c.TLS, c.HTTPPort, c.HTTPSPort = tc.tls, 80, 443
			if tc.tls != nginx.TLSOff {
				c.Domain = "notes.example.com"
			}
			c.ACMEEmail = "admin@example.com"
			c.ACMEServer, c.ACMEStaging, c.ACMECABundle = tc.server, tc.staging, tc.bundle
			err := c.Validate()
			if tc.key == "" && err != nil {
				t.Errorf("Validate: %v", err)
			}
			if tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key)) {
				t.Errorf("Validate error %v does not name %s", err, tc.key)
			}
		})
	}
}

func TestACMEDirectory(t *testing.T) {
	for _, tc := range []struct {
		server  string
		staging bool
		want    string
	}{
		{"", false, letsEncryptProduction},
		{"", true, letsEncryptStaging},
		{"https://ca.internal/dir", false, "https://ca.internal/dir"},
	} {
		c := &Config{ACMEServer: tc.server, ACMEStaging: tc.staging}
		if got := c.ACMEDirectory(); got != tc.want {
			t.Errorf("server %q staging %v: %q, want %q", tc.server, tc.staging, got, tc.want)
		}
	}
}

func TestWarnings(t *testing.T) {
	c := validConfig(t)
	c.TLS, c.Domain, c.ACMEEmail, c.HTTPPort, c.HTTPSPort = nginx.TLSACME, "notes.example.com", "a@example.com", 8080, 8443
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "notes:httpPort") || !strings.Contains(w[0], "port 80") {
		t.Errorf("Warnings = %q, want one about notes:httpPort and port 80", w)
	}
	c.HTTPPort = 80
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("Warnings with httpPort 80 = %q", w)
	}
}
