package main

import (
	"strings"
	"testing"

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
		ServiceMemoryMB: 256, ServiceCPUs: "1", LogLevel: "info",
		DrainDelay: 5e9, ShutdownTimeout: 15e9, BindAddress: "0.0.0.0",
		HTTPPort: 80, HTTPSPort: 443, TLS: nginx.TLSOff, DBName: "notes", DBOwner: "notes",
		BackupInterval: 3600e9, BackupKeep: 7, Engine: EngineContainers,
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
