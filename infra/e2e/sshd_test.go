//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sshHost is an sshd on a loopback port that lets one throwaway, key-only user in, the user that
// the SSH deploy path connects as. The user is in the docker group so it reaches the local daemon
// the way a deploy user on a real VM does.
type sshHost struct {
	User    string
	Port    int
	SSHOpts []string // what the stack's sshOpts config gets: key, known_hosts, no agent
}

// sshUserPrefix names the throwaway deploy users; each sshd gets its own (prefix, process id and
// a counter), so neither two suites on one machine nor two parallel tests share, delete or
// (TestFaults kills a user's ssh clients) disconnect each other's user.
const sshUserPrefix = "notes-e2e-"

var sshUsers atomic.Int32

func startSSHD(t *testing.T) *sshHost {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if _, err := os.Stat(sshd); err != nil {
			t.Fatal("sshd not found: install openssh-server (make setup does)")
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the SSH path needs root to create its throwaway user and start sshd")
	}
	sock, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		t.Fatalf("docker socket: %v", err)
	}
	grp, err := user.LookupGroup("docker")
	if err != nil {
		t.Fatalf("no docker group: start dockerd with -G docker (make setup does): %v", err)
	}
	if fmt.Sprint(sockGID(sock)) != grp.Gid {
		t.Fatalf("/var/run/docker.sock is not owned by group docker: start dockerd with -G docker")
	}
	sshUser := fmt.Sprintf("%s%d-%d", sshUserPrefix, os.Getpid(), sshUsers.Add(1))
	if _, err := user.Lookup(sshUser); err != nil {
		run(t, "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "docker", sshUser)
		t.Cleanup(func() { exec.Command("userdel", "--remove", sshUser).Run() })
	}
	// useradd leaves the account locked, and sshd without PAM refuses locked accounts even for keys.
	run(t, "usermod", "-p", "*", sshUser)
	u, err := user.Lookup(sshUser)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	hostKey := filepath.Join(dir, "host_ed25519")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// sshd reads the keys as the user, so they live in the user's home, owned by the user.
	sshDir := filepath.Join(u.HomeDir, ".ssh")
	authorized := filepath.Join(sshDir, "authorized_keys")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", "-R", u.Uid+":"+u.Gid, sshDir)
	t.Cleanup(func() { os.Remove(authorized) })

	port := freePort(t)
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, fmt.Appendf(nil, "[127.0.0.1]:%d %s", port, hostPub), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
`, port, hostKey, filepath.Join(dir, "sshd.pid"), authorized, sshUser), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "sshd.log")
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg, "-E", logFile)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("sshd log:\n%s", tail(string(b), 30))
			}
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h := &sshHost{
		User: u.Username,
		Port: port,
		SSHOpts: []string{"-i", key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + knownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"},
	}
	// The deploy runs `docker system dial-stdio` over this connection: prove it works first, so a
	// failure here is reported as the SSH setup's and not as the program's.
	args := append(append([]string{}, h.SSHOpts...), "-p", fmt.Sprint(port), sshUser+"@127.0.0.1", "docker", "version", "--format", "{{.Server.Version}}")
	if out, err := exec.Command("ssh", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh to the test sshd: %v\n%s", err, out)
	}
	return h
}

func (h *sshHost) dockerHost() string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d", h.User, h.Port)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func sockGID(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Gid
	}
	return ^uint32(0)
}
