package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The build context is exactly ContextFiles: no stack config (encrypted secrets), no infra/,
// no .git, but the Go module, the service, the migrations and the nginx package.
func TestContextFilesExcludeSecretsAndInfra(t *testing.T) {
	files, err := ContextFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	checkContextList(t, files)
	if !sort.StringsAreSorted(files) {
		t.Error("ContextFiles is not sorted")
	}
}

func checkContextList(t *testing.T, files []string) {
	t.Helper()
	has := map[string]bool{}
	prefix := map[string]bool{}
	for _, f := range files {
		f = strings.TrimPrefix(f, "./")
		has[f] = true
		if i := strings.Index(f, "/"); i > 0 {
			prefix[f[:i+1]] = true
		}
		switch {
		case strings.HasPrefix(f, "Pulumi") && strings.HasSuffix(f, ".yaml"),
			strings.HasPrefix(f, "infra/"), f == "infra",
			strings.HasPrefix(f, ".git/"), f == ".git",
			strings.HasPrefix(f, ".pulumi-state/"), strings.HasPrefix(f, "docs/"),
			strings.HasSuffix(f, "_test.go"):
			t.Errorf("build context contains %s", f)
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "Dockerfile", "service/main.go"} {
		if !has[f] {
			t.Errorf("build context lacks %s", f)
		}
	}
	for _, p := range []string{"service/", "migrations/", "nginx/"} {
		if !prefix[p] {
			t.Errorf("build context has nothing under %s", p)
		}
	}
}

// A synthetic context: a stack file, infra/, .git and an untracked secret next to the module.
func TestContextFilesSynthetic(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".dockerignore", ".git\ninfra\nPulumi*.yaml\n**/*_test.go\n*.md\n")
	write("Dockerfile", "FROM scratch\n")
	write("go.mod", "module x\n")
	write("Pulumi.prod.yaml", "encryptionsalt: v1:abc\n")
	write("Pulumi.e2e123.yaml", "secret\n")
	write("infra/main.go", "package main\n")
	write(".git/config", "[core]\n")
	write("README.md", "x\n")
	write("service/main.go", "package main\n")
	write("service/main_test.go", "package main\n")
	write("service/README.md", "kept: *.md matches at the root only\n")
	write("migrations/00001.sql", "select 1;\n")
	write("nginx/render.go", "package nginx\n")
	files, err := ContextFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".dockerignore", "Dockerfile", "go.mod", "migrations/00001.sql", "nginx/render.go", "service/README.md", "service/main.go"}
	if strings.Join(files, ",") != strings.Join(want, ",") {
		t.Errorf("ContextFiles = %v, want %v", files, want)
	}
	d1, err := ContextDigest(root)
	if err != nil {
		t.Fatal(err)
	}
	// An excluded file does not change the digest; a context file does.
	write("Pulumi.prod.yaml", "encryptionsalt: v1:def\n")
	write("infra/new.go", "package main\n")
	if d2, _ := ContextDigest(root); d2 != d1 {
		t.Error("digest changed for an excluded file")
	}
	write("service/main.go", "package main // changed\n")
	if d3, _ := ContextDigest(root); d3 == d1 {
		t.Error("digest unchanged after a context file changed")
	}
}

// The archive BuildCommand streams holds exactly ContextFiles, on every host type.
func TestBuildCommandArchivesContextFiles(t *testing.T) {
	files, err := ContextFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dh := range []string{"unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "ssh://deploy@h.example.com"} {
		cfg := &Config{Stack: "s", GoImage: "golang:1.26", AppVersion: "1", ImageName: "notes-service", DockerHost: dh}
		h := &Host{cfg: cfg}
		cmd, _ := h.BuildCommand(cfg, cfg.ImageRef())
		archive := contextArchiveCommand(files)
		if !strings.Contains(cmd, archive+" | ") {
			t.Errorf("%s: build command does not pipe the ContextFiles archive: %s", dh, cmd)
		}
		if strings.Contains(cmd, " . ") || strings.Contains(cmd, "--exclude") {
			t.Errorf("%s: build command still sends a directory: %s", dh, cmd)
		}
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	// Run the archive command in the repository root and read the archive back.
	c := exec.Command("sh", "-c", contextArchiveCommand(files))
	c.Dir = ".."
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(out)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var got []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimPrefix(hdr.Name, "./"))
	}
	io.Copy(io.Discard, out)
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	checkContextList(t, got)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(files, "\n") {
		t.Errorf("archive entries differ from ContextFiles:\n%v\n%v", got, files)
	}
}

func TestContextArchiveNamesAreNotOptions(t *testing.T) {
	cmd := contextArchiveCommand([]string{"-rf", "--to-command=x", "a b"})
	for _, s := range []string{" -- ", "./-rf", "./--to-command=x", "'./a b'"} {
		if !strings.Contains(cmd, s) {
			t.Errorf("archive command lacks %q: %s", s, cmd)
		}
	}
}

func TestParseSSH(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SSHTarget
		ok   bool
	}{
		{"ssh://deploy@host.example.com", SSHTarget{"deploy", "host.example.com", 22}, true},
		{"ssh://deploy@host.example.com:2222", SSHTarget{"deploy", "host.example.com", 2222}, true},
		{"ssh://host.example.com", SSHTarget{"", "host.example.com", 22}, true},
		{"ssh://d.e_p-1@10.0.0.5:22", SSHTarget{"d.e_p-1", "10.0.0.5", 22}, true},
		{"ssh://deploy@[2001:db8::1]:2200", SSHTarget{"deploy", "2001:db8::1", 2200}, true},
		{"ssh://deploy@localhost", SSHTarget{"deploy", "localhost", 22}, true},
		{"ssh://deploy@vm-1/", SSHTarget{"deploy", "vm-1", 22}, true},
		{"ssh://-oProxyCommand=touch%20x@h", SSHTarget{}, false},
		{"ssh://-oProxyCommand=x@h", SSHTarget{}, false},
		{"ssh://-l@h", SSHTarget{}, false},
		{"ssh://de$ploy@h", SSHTarget{}, false},
		{"ssh://de%3Bploy@h", SSHTarget{}, false},
		{"ssh://@h", SSHTarget{}, false},
		{"ssh://deploy@-oProxyCommand=x", SSHTarget{}, false},
		{"ssh://deploy@-h", SSHTarget{}, false},
		{"ssh://deploy@h-.example.com", SSHTarget{}, false},
		{"ssh://deploy@h%27x", SSHTarget{}, false},
		{"ssh://deploy@h;rm", SSHTarget{}, false},
		{"ssh://deploy@h$(id)", SSHTarget{}, false},
		{"ssh://deploy@h_x", SSHTarget{}, false},
		{"ssh://deploy@" + strings.Repeat("a", 64) + ".com", SSHTarget{}, false},
		{"ssh://deploy@h:0", SSHTarget{}, false},
		{"ssh://deploy@h:65536", SSHTarget{}, false},
		{"ssh://deploy@h:", SSHTarget{}, false},
		{"ssh://deploy@h:-1", SSHTarget{}, false},
		{"ssh://deploy:pw@h", SSHTarget{}, false},
		{"ssh://deploy@h/path", SSHTarget{}, false},
		{"ssh://deploy@h?x=1", SSHTarget{}, false},
		{"tcp://h:2376", SSHTarget{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSSH(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseSSH(%q) = %+v, %v; want ok=%v", tc.in, got, err, tc.ok)
			}
			if tc.ok && got != tc.want {
				t.Errorf("ParseSSH(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			// Through Validate, the error names the key.
			if strings.HasPrefix(tc.in, "ssh://") {
				c := validConfig()
				c.DockerHost = tc.in
				err := c.Validate()
				if tc.ok && err != nil {
					t.Errorf("Validate: %v", err)
				}
				if !tc.ok && (err == nil || !strings.Contains(err.Error(), "notes:dockerHost")) {
					t.Errorf("Validate error %v does not name notes:dockerHost", err)
				}
			}
		})
	}
}

func TestValidateTCPDockerHost(t *testing.T) {
	for in, ok := range map[string]bool{
		"tcp://10.0.0.5:2376": true, "tcp://docker.example.com:2376": true, "tcp://[::1]:2375": true,
		"tcp://h;id:2376": false, "tcp://-h:2376": false, "tcp://h:0": false, "tcp://:2376": false, "tcp://u@h:2376": false,
	} {
		c := validConfig()
		c.DockerHost = in
		err := c.Validate()
		if ok != (err == nil) || (!ok && !strings.Contains(err.Error(), "notes:dockerHost")) {
			t.Errorf("dockerHost %q: Validate = %v, want ok=%v", in, err, ok)
		}
	}
}

// Neither user nor host can become an ssh option: they follow -l, -p and --.
func TestSSHCommandArgumentOrder(t *testing.T) {
	cfg := &Config{DockerHost: "ssh://deploy@h.example.com:2222", SSHOpts: []string{"-i", "/key"}}
	h := &Host{cfg: cfg}
	tg, err := ParseSSH(cfg.DockerHost)
	if err != nil {
		t.Fatal(err)
	}
	got := h.sshCommand(tg, "docker version")
	want := "ssh -o BatchMode=yes -i /key -l deploy -p 2222 -- h.example.com 'docker version'"
	if got != want {
		t.Errorf("sshCommand = %s\nwant        %s", got, want)
	}
	cmd, _ := h.DockerCommand("ps")
	if !strings.HasSuffix(cmd, "-- h.example.com 'docker ps'") {
		t.Errorf("DockerCommand = %s", cmd)
	}
	tg, _ = ParseSSH("ssh://[2001:db8::1]")
	if got := h.sshCommand(tg, "true"); got != "ssh -o BatchMode=yes -i /key -p 22 -- 2001:db8::1 true" {
		t.Errorf("sshCommand without user = %s", got)
	}
}

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
			c := validConfig()
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
			c := validConfig()
			c.TLS = TLSACME
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

// The in-container smoke check: the host name is a quoted printf argument, never in the
// format string or unquoted.
func TestSmokeCommandQuotesHost(t *testing.T) {
	cfg := validConfig()
	cfg.DockerHost = "ssh://deploy@h.example.com"
	cfg.BindAddress = "127.0.0.1" // not reachable from here: the check runs inside nginx
	h := &Host{cfg: cfg}
	cmd, _ := smokeCommand(cfg, h)
	if !strings.Contains(cmd, "docker exec notes-s-nginx bash -c") {
		t.Fatalf("expected the in-container check, got %s", cmd)
	}
	if !strings.Contains(cmd, `Host: %s`) || !strings.Contains(cmd, `h.example.com >&3`) {
		t.Errorf("host is not a printf argument: %s", cmd)
	}
	if strings.Contains(cmd, "Host: h.example.com") {
		t.Errorf("host is in the printf format: %s", cmd)
	}
	// Run the inner script's printf with a hostile value to show it stays one argument.
	if _, err := exec.LookPath("bash"); err == nil {
		evil := "x'; touch /tmp/notes-smoke-pwned; '%n"
		line := "printf 'Host: %s\\n' " + shellQuote(evil)
		out, err := exec.Command("bash", "-c", line).Output()
		if err != nil || string(out) != "Host: "+evil+"\n" {
			t.Errorf("quoted printf = %q, %v", out, err)
		}
	}
	cfg.DockerHost = "unix:///var/run/docker.sock"
	cfg.BindAddress = "::1"
	cfg.Domain = "notes.example.com"
	cmd, _ = smokeCommand(cfg, h)
	if !strings.Contains(cmd, "--connect-to 'notes.example.com::[::1]:'") {
		t.Errorf("IPv6 --connect-to not bracketed: %s", cmd)
	}
}

// validConfig is a minimal valid plain configuration.
func validConfig() *Config {
	return &Config{
		Stack: "s", DockerHost: "unix:///var/run/docker.sock", Replicas: 1, AppVersion: "dev",
		ImageName: "notes-service", GoImage: "golang:1.26", NginxImage: "nginx:1.27",
		PostgresImage: "postgres:17", CertbotImage: "certbot/certbot:v3.0.1",
		ServiceMemoryMB: 256, ServiceCPUs: "1", LogLevel: "info",
		DrainDelay: 5e9, ShutdownTimeout: 15e9, BindAddress: "0.0.0.0",
		HTTPPort: 80, HTTPSPort: 443, TLS: TLSOff, DBName: "notes", DBOwner: "notes",
		BackupInterval: 3600e9, BackupKeep: 7,
	}
}
