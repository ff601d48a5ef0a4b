package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func TestParseDockerHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DockerHost // raw is filled in from in
		ok   bool
	}{
		{"unix:///var/run/docker.sock", DockerHost{Kind: UnixHost, Path: "/var/run/docker.sock"}, true},
		{"tcp://10.0.0.5:2376", DockerHost{Kind: TCPHost, Host: "10.0.0.5", Port: 2376}, true},
		{"tcp://docker.example.com:2376", DockerHost{Kind: TCPHost, Host: "docker.example.com", Port: 2376}, true},
		{"tcp://[::1]:2375", DockerHost{Kind: TCPHost, Host: "::1", Port: 2375}, true},
		{"tcp://h;id:2376", DockerHost{}, false},
		{"tcp://-h:2376", DockerHost{}, false},
		{"tcp://h:0", DockerHost{}, false},
		{"tcp://:2376", DockerHost{}, false},
		{"tcp://u@h:2376", DockerHost{}, false},
		{"ssh://deploy@host.example.com", DockerHost{Kind: SSHHost, User: "deploy", Host: "host.example.com", Port: 22}, true},
		{"ssh://deploy@host.example.com:2222", DockerHost{Kind: SSHHost, User: "deploy", Host: "host.example.com", Port: 2222}, true},
		{"ssh://host.example.com", DockerHost{Kind: SSHHost, Host: "host.example.com", Port: 22}, true},
		{"ssh://d.e_p-1@10.0.0.5:22", DockerHost{Kind: SSHHost, User: "d.e_p-1", Host: "10.0.0.5", Port: 22}, true},
		{"ssh://deploy@[2001:db8::1]:2200", DockerHost{Kind: SSHHost, User: "deploy", Host: "2001:db8::1", Port: 2200}, true},
		{"ssh://deploy@localhost", DockerHost{Kind: SSHHost, User: "deploy", Host: "localhost", Port: 22}, true},
		{"ssh://deploy@vm-1/", DockerHost{Kind: SSHHost, User: "deploy", Host: "vm-1", Port: 22}, true},
		{"ssh://-oProxyCommand=touch%20x@h", DockerHost{}, false},
		{"ssh://-oProxyCommand=x@h", DockerHost{}, false},
		{"ssh://-l@h", DockerHost{}, false},
		{"ssh://de$ploy@h", DockerHost{}, false},
		{"ssh://de%3Bploy@h", DockerHost{}, false},
		{"ssh://@h", DockerHost{}, false},
		{"ssh://deploy@-oProxyCommand=x", DockerHost{}, false},
		{"ssh://deploy@-h", DockerHost{}, false},
		{"ssh://deploy@h-.example.com", DockerHost{}, false},
		{"ssh://deploy@h%27x", DockerHost{}, false},
		{"ssh://deploy@h;rm", DockerHost{}, false},
		{"ssh://deploy@h$(id)", DockerHost{}, false},
		{"ssh://deploy@h_x", DockerHost{}, false},
		{"ssh://deploy@" + strings.Repeat("a", 64) + ".com", DockerHost{}, false},
		{"ssh://deploy@h:0", DockerHost{}, false},
		{"ssh://deploy@h:65536", DockerHost{}, false},
		{"ssh://deploy@h:", DockerHost{}, false},
		{"ssh://deploy@h:-1", DockerHost{}, false},
		{"ssh://deploy:pw@h", DockerHost{}, false},
		{"ssh://deploy@h/path", DockerHost{}, false},
		{"ssh://deploy@h?x=1", DockerHost{}, false},
		{"http://host:2375", DockerHost{}, false},
		{"/var/run/docker.sock", DockerHost{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDockerHost(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseDockerHost(%q) = %+v, %v; want ok=%v", tc.in, got, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			tc.want.raw = tc.in
			if got != tc.want {
				t.Errorf("ParseDockerHost(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want the original %q", got.String(), tc.in)
			}
		})
	}
}

// A bad dockerHost fails config loading with an error that names the key, for every kind.
func TestDockerHostConfigErrorNamesKey(t *testing.T) {
	for _, h := range []string{"http://host:2375", "tcp://h;id:2376", "ssh://deploy:pw@h", "ssh://-l@h", "unix:/x"} {
		t.Run(h, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			cfg["notes:dockerHost"] = h
			err := deploy(t, "dev", cfg, &mocks{})
			if err == nil || !strings.Contains(err.Error(), "notes:dockerHost") {
				t.Errorf("deploy error = %v, want one naming notes:dockerHost", err)
			}
		})
	}
}

// Neither user nor host can become an ssh option: they follow -l, -p and --.
func TestOnHostSSHArgumentOrder(t *testing.T) {
	on := NewOnHost(mustDockerHost(t, "ssh://deploy@h.example.com:2222"), []string{"-i", "/key"})
	got, env := on.Docker("version")
	want := "ssh -o BatchMode=yes -i /key -l deploy -p 2222 -- h.example.com 'docker version'"
	if got != want {
		t.Errorf("Docker = %s\nwant     %s", got, want)
	}
	if len(env) != 0 {
		t.Errorf("ssh command env = %v, want none (DOCKER_HOST is not for ssh)", env)
	}
	script, _ := on.Script(`echo "$1"`, "a b")
	if want := `-- h.example.com 'sh -c '"'"'echo "$1"'"'"' sh '"'"'a b'"'"''`; !strings.HasSuffix(script, want) {
		t.Errorf("Script = %s\nwant suffix %s", script, want)
	}
	on = NewOnHost(mustDockerHost(t, "ssh://[2001:db8::1]"), []string{"-i", "/key"})
	if got, _ := on.Command("true"); got != "ssh -o BatchMode=yes -i /key -p 22 -- 2001:db8::1 true" {
		t.Errorf("Command without user = %s", got)
	}
}

// Local hosts run the command here with DOCKER_HOST set to the original string.
func TestOnHostLocal(t *testing.T) {
	for _, h := range []string{"unix:///var/run/docker.sock", "tcp://10.0.0.5:2376"} {
		on := NewOnHost(mustDockerHost(t, h), nil)
		cmd, env := on.Docker("ps", "-a")
		if cmd != "docker ps -a" {
			t.Errorf("%s: Docker = %q", h, cmd)
		}
		if len(env) != 1 || env["DOCKER_HOST"] != pulumi.String(h) {
			t.Errorf("%s: env = %v", h, env)
		}
		if on.ProviderSSHOpts() != nil {
			t.Errorf("%s: provider ssh options for a non-ssh host", h)
		}
	}
}

func TestDockerHostIsLoopback(t *testing.T) {
	for h, want := range map[string]bool{
		"tcp://127.0.0.1:2375": true, "tcp://127.5.0.1:2375": true, "tcp://[::1]:2375": true, "tcp://localhost:2375": true,
		"tcp://LOCALHOST:2375": true, "tcp://10.0.0.5:2375": false, "tcp://docker.example.com:2376": false,
		"tcp://localhost.example.com:2375": false, "tcp://0.0.0.0:2375": false, "unix:///var/run/docker.sock": false,
		"ssh://u@127.0.0.1": false,
	} {
		if got := mustDockerHost(t, h).IsLoopback(); got != want {
			t.Errorf("%s: IsLoopback = %v, want %v", h, got, want)
		}
	}
}

// With TLS material, a tcp:// command runs with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH pointing at
// private copies of the secrets, which are gone afterwards and never in the command line.
func TestOnHostTCPWithTLS(t *testing.T) {
	tls := DockerTLS{CA: pulumi.String("CA-PEM").ToStringOutput(), Cert: pulumi.String("CERT-PEM").ToStringOutput(),
		Key: pulumi.String("KEY-PEM").ToStringOutput(), Set: true, plain: [3]string{"CA-PEM", "CERT-PEM", "KEY-PEM"}}
	on := NewOnHost(mustDockerHost(t, "tcp://docker.example.com:2376"), nil).WithTLS(tls)
	cmd, env := on.Command("sh", "-c", `cat "$DOCKER_CERT_PATH/ca.pem" "$DOCKER_CERT_PATH/cert.pem" "$DOCKER_CERT_PATH/key.pem"; `+
		`stat -c %a "$DOCKER_CERT_PATH"; echo "verify=$DOCKER_TLS_VERIFY left=${NOTES_DOCKER_TLS_KEY:-none}"; echo "$DOCKER_CERT_PATH"; exit 3`)
	if strings.Contains(cmd, "KEY-PEM") {
		t.Fatalf("the key is in the command line: %s", cmd)
	}
	for _, k := range []string{"DOCKER_HOST", "NOTES_DOCKER_TLS_CA", "NOTES_DOCKER_TLS_CERT", "NOTES_DOCKER_TLS_KEY"} {
		if _, ok := env[k]; !ok {
			t.Errorf("env lacks %s", k)
		}
	}
	// As a command resource gets it, and as the program's own processes (the orphan hook) do.
	c := exec.Command("sh", "-c", cmd)
	c.Env = append(os.Environ(), on.ProcessEnv()...)
	out, err := c.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("exit status = %v, want the command's own 3; output %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 || strings.Join(lines[:3], ",") != "CA-PEM,CERT-PEM,KEY-PEM" || lines[3] != "700" || lines[4] != "verify=1 left=none" {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := os.Stat(lines[5]); !os.IsNotExist(err) {
		t.Errorf("the certificate directory %s is still there: %v", lines[5], err)
	}
}

// Command lines made of several OnHost commands, and a build piped into one, on a tcp:// host
// with TLS: every docker command finds the material, one directory serves the whole line and is
// gone afterwards, on success and on failure.
func TestOnHostTCPWithTLSComposed(t *testing.T) {
	tls := DockerTLS{CA: pulumi.String("CA-PEM").ToStringOutput(), Cert: pulumi.String("CERT-PEM").ToStringOutput(),
		Key: pulumi.String("KEY-PEM").ToStringOutput(), Set: true}
	on := NewOnHost(mustDockerHost(t, "tcp://docker.example.com:2376"), nil).WithTLS(tls)
	// Each part prints the key it finds and where.
	show := []string{"sh", "-c", `read -r in || in=none; echo "$in $(cat "$DOCKER_CERT_PATH/key.pem") $DOCKER_CERT_PATH verify=$DOCKER_TLS_VERIFY"; exit "${1:-0}"`, "sh"}
	first, _ := on.Command(show...)
	failing, _ := on.Command(append(show, "4")...)
	piped, _ := on.Piped("echo piped", show...)
	tests := []struct {
		name, line string
		wantIn     []string
		wantExit   int
	}{
		{"check && probe || logs", "{ " + first + " && " + first + "; } || { " + failing + "; }", []string{"none", "none"}, 0},
		{"check fails, logs", failing + " || { " + first + "; exit 1; }", []string{"none", "none"}, 1},
		{"piped build", piped, []string{"piped"}, 0},
		{"piped, then more", piped + " && " + first, []string{"piped", "none"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := exec.Command("sh", "-c", tt.line)
			c.Env = append(os.Environ(), "NOTES_DOCKER_TLS_CA=CA-PEM", "NOTES_DOCKER_TLS_CERT=CERT-PEM", "NOTES_DOCKER_TLS_KEY=KEY-PEM")
			c.Stdin = strings.NewReader("")
			out, err := c.Output()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if exit != tt.wantExit {
				t.Errorf("exit status %d, want %d; output:\n%s", exit, tt.wantExit, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(tt.wantIn) {
				t.Fatalf("output:\n%s\nwant %d lines", out, len(tt.wantIn))
			}
			dirs := map[string]bool{}
			for i, line := range lines {
				f := strings.Fields(line)
				if len(f) != 4 || f[0] != tt.wantIn[i] || f[1] != "KEY-PEM" || f[3] != "verify=1" {
					t.Errorf("line %d: %q, want %q KEY-PEM <dir> verify=1", i, line, tt.wantIn[i])
					continue
				}
				dirs[f[2]] = true
			}
			if len(dirs) != 1 {
				t.Errorf("the line used %d certificate directories, want one: %v", len(dirs), dirs)
			}
			for d := range dirs {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("the certificate directory %s is still there: %v", d, err)
				}
			}
		})
	}
}
