// Package cluster starts throw-away Docker daemons on this machine, each in its own network
// namespace on a bridge the package creates, as the hosts of a real multi-node Docker Swarm
// (the swarm itself is left to the code under test). Each node has an sshd, so tests reach
// the nodes the way users reach their hosts: ssh://user@address.
//
// Everything it creates is named after a random cluster id and removed in t.Cleanup, also
// when the test fails: the daemons (stopped by pid), their containers' processes, the
// namespaces, the bridge, the FORWARD rule, the ssh user and the data directories. It never
// touches the host's Docker daemon except to read the images it copies into the nodes.
//
// Gotchas (seen here, see ../shared/swarm/README.md): a daemon is started with nsenter --net,
// not `ip netns exec` (which remounts /sys and hides the cgroup mounts dockerd needs); the host
// dockerd sets FORWARD to DROP, and bridged frames pass iptables, so the bridge needs an
// ACCEPT rule; `ssh` into a network namespace shares the host's filesystem, so the sshd of a
// node runs in a mount namespace of its own where /run/docker.sock is the node's socket.
//
// It needs root, docker.io, iproute2, iptables, util-linux (nsenter, unshare) and
// openssh-server.
package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PlainRegistryPort is the one port of a node on which every node's daemon accepts a registry
// over plain HTTP (--insecure-registry).
const PlainRegistryPort = 5000

// CertsDir is where every node's daemon reads its registries' CA certificates from: the
// daemons run in this machine's mount namespace, so it is the host's /etc/docker/certs.d,
// shared by all nodes.
const CertsDir = "/etc/docker/certs.d"

// Cluster is a set of nodes on one bridge.
type Cluster struct {
	t       testing.TB
	ID      string // random, part of every name the cluster creates
	Bridge  string
	Subnet  string // a.b.c.0/24
	Gateway string // the host's address on the bridge
	Nodes   []*Node
	SSH     SSH
	dir     string
	// certsDirMade: CertsDir did not exist before the cluster (what the code under test
	// writes there for the nodes goes with it).
	certsDirMade bool
}

// SSH is how clients reach the nodes' sshd.
type SSH struct {
	User       string
	Key        string   // private key file
	KnownHosts string   // every node's host key
	Opts       []string // ssh options: key, known_hosts, batch mode
}

// Node is one Docker daemon in its own network namespace.
type Node struct {
	c       *Cluster
	Index   int    // 1-based
	Name    string // network namespace name, also the containerd namespace
	Addr    string // its address on the bridge
	Socket  string // the daemon's unix socket path (reachable from the host)
	veth    string // host side of its link
	dataDir string
	execDir string
	pidFile string
	cgroup  string // parent cgroup of its containers
	daemon  *exec.Cmd
	exited  chan struct{} // closed when daemon has exited
	sshd    *exec.Cmd
}

// DockerHost is the node's daemon socket as a DOCKER_HOST value.
func (n *Node) DockerHost() string { return "unix://" + n.Socket }

// SSHHost is the node as users name it: ssh://user@address.
func (n *Node) SSHHost() string { return fmt.Sprintf("ssh://%s@%s", n.c.SSH.User, n.Addr) }

// New starts n nodes and returns once every daemon and sshd answers. Everything is removed in
// t.Cleanup.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("cluster: needs root (network namespaces, dockerd, sshd)")
	}
	for _, tool := range []string{"ip", "iptables", "nsenter", "unshare", "dockerd", "docker", "ssh", "ssh-keygen", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("cluster: %s not found (make setup installs what the cluster needs)", tool)
		}
	}
	c := &Cluster{t: t, ID: randomHex(t, 3)}
	// Short, absolute and not under the test's temp dir: exec roots hold unix sockets (a path
	// limit of 108 bytes) and data roots hold overlay mounts, which t.TempDir's RemoveAll cannot
	// remove before they are unmounted.
	c.dir = filepath.Join("/var/tmp", "ncl"+c.ID)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	_, err := os.Stat(CertsDir)
	c.certsDirMade = os.IsNotExist(err)
	c.Bridge = "ncl" + c.ID
	c.createBridge()
	c.createUser()
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, c.addNode(i))
	}
	for _, node := range c.Nodes {
		node.startDaemon()
	}
	for _, node := range c.Nodes {
		node.waitDaemon(90 * time.Second)
		node.startSSHD()
	}
	for _, node := range c.Nodes {
		node.checkSSH()
	}
	t.Logf("cluster %s: %d nodes on %s (%s), ssh user %s", c.ID, n, c.Bridge, c.Subnet, c.SSH.User)
	return c
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// createBridge creates the bridge on a free /24 of 10.98.0.0/16 (one no interface or route
// of this machine uses) and lets its nodes talk to each other through FORWARD.
func (c *Cluster) createBridge() {
	c.t.Helper()
	used := string(mustOut(c.t, "ip", "-4", "route", "show", "table", "all")) + string(mustOut(c.t, "ip", "-4", "addr"))
	for attempt := 0; ; attempt++ {
		b := make([]byte, 1)
		if _, err := rand.Read(b); err != nil {
			c.t.Fatal(err)
		}
		prefix := fmt.Sprintf("10.98.%d.", b[0])
		if strings.Contains(used, prefix) {
			if attempt > 50 {
				c.t.Fatal("cluster: no free /24 in 10.98.0.0/16")
			}
			continue
		}
		c.Subnet, c.Gateway = prefix+"0/24", prefix+"1"
		break
	}
	must(c.t, "ip", "link", "add", c.Bridge, "type", "bridge")
	must(c.t, "ip", "addr", "add", c.Gateway+"/24", "dev", c.Bridge)
	must(c.t, "ip", "link", "set", c.Bridge, "up")
	must(c.t, "iptables", "-I", "FORWARD", "-i", c.Bridge, "-o", c.Bridge, "-j", "ACCEPT")
}

// createUser makes the throwaway deploy user (in the docker group: the nodes' sockets are
// root:docker like the host's) and its key, and the host key every node's sshd uses.
func (c *Cluster) createUser() {
	c.t.Helper()
	if _, err := user.LookupGroup("docker"); err != nil {
		c.t.Fatalf("cluster: no docker group (make setup starts dockerd with -G docker): %v", err)
	}
	name := "ncl" + c.ID
	must(c.t, "useradd", "--create-home", "--shell", "/bin/sh", "--groups", "docker", name)
	// sshd without PAM refuses a locked account, even for keys.
	must(c.t, "usermod", "-p", "*", name)
	u, err := user.Lookup(name)
	if err != nil {
		c.t.Fatal(err)
	}
	key := filepath.Join(c.dir, "id_ed25519")
	must(c.t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	must(c.t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(c.dir, "host_ed25519"))
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		c.t.Fatal(err)
	}
	sshDir := filepath.Join(u.HomeDir, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sshDir, "authorized_keys"), pub, 0o600); err != nil {
		c.t.Fatal(err)
	}
	must(c.t, "chown", "-R", u.Uid+":"+u.Gid, sshDir)
	c.SSH = SSH{
		User:       name,
		Key:        key,
		KnownHosts: filepath.Join(c.dir, "known_hosts"),
	}
	c.SSH.Opts = []string{"-i", key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + c.SSH.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}
}

// addNode creates node i's namespace and link; its daemon starts later.
func (c *Cluster) addNode(i int) *Node {
	c.t.Helper()
	n := &Node{
		c:     c,
		Index: i,
		Name:  fmt.Sprintf("ncl%sn%d", c.ID, i),
		Addr:  strings.TrimSuffix(c.Gateway, "1") + strconv.Itoa(10+i),
		veth:  fmt.Sprintf("vcl%sn%d", c.ID, i),
	}
	n.Socket = "/run/" + n.Name + ".sock"
	n.dataDir = filepath.Join(c.dir, fmt.Sprintf("n%d", i))
	n.execDir = "/run/" + n.Name
	n.pidFile = "/run/" + n.Name + ".pid"
	n.cgroup = "/" + n.Name
	must(c.t, "ip", "netns", "add", n.Name)
	must(c.t, "ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	must(c.t, "ip", "link", "set", n.veth, "master", c.Bridge, "up")
	must(c.t, "ip", "-n", n.Name, "addr", "add", n.Addr+"/24", "dev", "eth0")
	must(c.t, "ip", "-n", n.Name, "link", "set", "eth0", "up")
	must(c.t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	// No default route: a node reaches its subnet and nothing else, so a pull from a public
	// registry fails at once (and falls back to the images copied in) instead of timing out.
	if err := os.MkdirAll(n.dataDir, 0o711); err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (n *Node) netns() string { return "/var/run/netns/" + n.Name }

// startDaemon starts the node's dockerd in its namespace. Plain-HTTP registries are trusted
// only on PlainRegistryPort of the cluster's nodes; containerd gets namespaces of the node's own, and the
// containers a parent cgroup of the node's own (so Kill can find them).
func (n *Node) startDaemon() {
	n.c.t.Helper()
	logFile, err := os.OpenFile(filepath.Join(n.dataDir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.c.t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("nsenter", "--net="+n.netns(), "dockerd",
		"--data-root", filepath.Join(n.dataDir, "data"), "--exec-root", n.execDir,
		"-H", n.DockerHost(), "--pidfile", n.pidFile,
		"--containerd-namespace", n.Name, "--containerd-plugins-namespace", n.Name+"p",
		"--cgroup-parent", n.cgroup,
	)
	// Plain HTTP only on PlainRegistryPort of the nodes: a registry on another port of theirs
	// must have a certificate the daemon trusts (an insecure registry is not verified at all).
	for _, m := range n.c.Nodes {
		cmd.Args = append(cmd.Args, "--insecure-registry", fmt.Sprintf("%s:%d", m.Addr, PlainRegistryPort))
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a ^C of the test does not reach it before the cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.c.t.Fatalf("cluster: start dockerd of %s: %v", n.Name, err)
	}
	n.daemon = cmd
	n.exited = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(n.exited)
}

func (n *Node) waitDaemon(timeout time.Duration) {
	n.c.t.Helper()
	if err := n.awaitDaemon(timeout); err != nil {
		n.c.t.Fatalf("cluster: %v:\n%s", err, n.Log(30))
	}
}

// awaitDaemon waits until the node's daemon answers, and fails early when it exited.
func (n *Node) awaitDaemon(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := n.Docker("info", "--format", "{{.ID}}"); err == nil {
			return nil
		}
		if n.waitGone(0) {
			return fmt.Errorf("dockerd of %s exited", n.Name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd of %s does not answer on %s within %v", n.Name, n.Socket, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Log is the last lines of the node's dockerd log.
func (n *Node) Log(lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.dataDir, "dockerd.log"))
	var l []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(line, "module=grpc") { // connection chatter
			l = append(l, line)
		}
	}
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// startSSHD starts an sshd on the node's address, port 22, in a mount namespace of its own in
// which /run/docker.sock is the node's daemon: what a user's `docker` and the docker
// provider's `docker system dial-stdio` over ssh reach.
func (n *Node) startSSHD() {
	n.c.t.Helper()
	c := n.c
	cfg := filepath.Join(n.dataDir, "sshd_config")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `ListenAddress %s:22
HostKey %s
PidFile %s
AllowUsers %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
`, n.Addr, filepath.Join(c.dir, "host_ed25519"), filepath.Join(n.dataDir, "sshd.pid"), c.SSH.User), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		c.t.Fatal(err)
	}
	sshd := "/usr/sbin/sshd"
	// unshare --mount makes the mount namespace private: the bind mount never reaches the host.
	cmd := exec.Command("nsenter", "--net="+n.netns(), "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /run/docker.sock && exec "$2" -D -e -f "$3" -E "$4"`, "sh",
		n.Socket, sshd, cfg, filepath.Join(n.dataDir, "sshd.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("cluster: start sshd of %s: %v", n.Name, err)
	}
	n.sshd = cmd
	go cmd.Wait()
	pub, err := os.ReadFile(filepath.Join(c.dir, "host_ed25519.pub"))
	if err != nil {
		c.t.Fatal(err)
	}
	known, _ := os.ReadFile(c.SSH.KnownHosts)
	if entry := fmt.Sprintf("%s %s", n.Addr, pub); !strings.Contains(string(known), entry) {
		if err := os.WriteFile(c.SSH.KnownHosts, append(known, entry...), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", n.Addr+":22", time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(n.dataDir, "sshd.log"))
			c.t.Fatalf("cluster: sshd of %s does not listen on %s:22: %v\n%s", n.Name, n.Addr, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSSH proves that `docker` over ssh reaches this node's daemon, not the host's or
// another node's: by its data root (the daemons' IDs come from one /etc/docker/key.json, and
// their host names are the machine's).
func (n *Node) checkSSH() {
	n.c.t.Helper()
	want := filepath.Join(n.dataDir, "data")
	got, err := n.SSH("docker", "info", "--format", "{{.DockerRootDir}}")
	if err != nil {
		n.c.t.Fatalf("cluster: docker over ssh to %s: %v", n.Name, err)
	}
	if got != want {
		n.c.t.Fatalf("cluster: docker over ssh to %s answers as daemon %q, want the node's %q", n.Name, got, want)
	}
}

// Docker runs the docker CLI against the node's socket and returns its trimmed output.
func (n *Node) Docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+n.DockerHost())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s on %s: %w\n%s", strings.Join(args, " "), n.Name, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// SSH runs a command on the node over ssh as the cluster's user.
func (n *Node) SSH(remote ...string) (string, error) {
	args := append(append([]string{}, n.c.SSH.Opts...), "-l", n.c.SSH.User, "--", n.Addr, strings.Join(remote, " "))
	out, err := exec.Command("ssh", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ssh %s %s: %w\n%s", n.Addr, strings.Join(remote, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// LoadImages copies images from the host's daemon into the nodes (docker save | docker load):
// what a pull from a registry would give them, without a registry.
func (c *Cluster) LoadImages(nodes []*Node, images ...string) {
	c.t.Helper()
	tar := filepath.Join(c.dir, "images-"+randomHex(c.t, 4)+".tar")
	defer os.Remove(tar)
	if out, err := exec.Command("docker", append([]string{"save", "-o", tar}, images...)...).CombinedOutput(); err != nil {
		c.t.Fatalf("cluster: docker save %v: %v\n%s", images, err, out)
	}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			_, err := n.Docker("load", "-q", "-i", tar)
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			c.t.Fatal(err)
		}
	}
}

// Kill takes the node down as a host that dies does: its link goes down first (so nothing
// of it is reachable any more), then its daemon, containerd and every process of its
// containers are killed with SIGKILL.
func (n *Node) Kill() {
	n.c.t.Helper()
	must(n.c.t, "ip", "link", "set", n.veth, "down")
	pids := n.containerPIDs()
	n.stopSSHD()
	if n.daemon != nil && n.daemon.Process != nil {
		n.daemon.Process.Kill()
	}
	n.killContainerd()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// And the containerd shims: a dead host has none, and a restarted containerd waits for
	// them long enough for dockerd to give up on it.
	for _, pid := range processesWithArg("-namespace", n.Name) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	n.waitGone(10 * time.Second)
	// A dead daemon's pid file makes the next start refuse to run.
	os.Remove(n.pidFile)
}

// Restart brings a killed node back: link up, the daemon started again on its data (it
// rejoins its swarm by itself). It is started up to three times, each attempt logged: the
// first start used to fail after a Kill until killContainerd removed containerd's stale pid
// file (see there).
func (n *Node) Restart() {
	n.c.t.Helper()
	must(n.c.t, "ip", "link", "set", n.veth, "up")
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		n.killContainerd()
		os.Remove(n.pidFile)
		n.startDaemon()
		if err = n.awaitDaemon(90 * time.Second); err == nil {
			// A new sshd: the old one's mount namespace holds the dead daemon's socket.
			n.startSSHD()
			n.checkSSH()
			return
		}
		n.c.t.Logf("cluster: restart of %s, attempt %d: %v:\n%s", n.Name, attempt, err, n.Log(3))
		n.daemon.Process.Kill()
		n.waitGone(10 * time.Second)
	}
	n.c.t.Fatalf("cluster: %v:\n%s", err, n.Log(30))
}

// killContainerd kills the node's containerd (dockerd starts its own, which outlives a
// killed dockerd) and waits until it is gone: a second one would wait for the first one's
// lock on its metadata. Then it removes containerd's pid file: on a busy machine the dead
// containerd's pid soon belongs to another process, and a dockerd that finds that pid alive
// takes it for its containerd ("containerd is still running"), waits for a socket nobody
// serves and gives up ("timeout waiting for containerd to start").
func (n *Node) killContainerd() {
	cfg := filepath.Join(n.execDir, "containerd", "containerd.toml")
	for range 50 {
		pids := processesWithArg("--config", cfg)
		if len(pids) == 0 {
			os.Remove(filepath.Join(n.execDir, "containerd", "containerd.pid"))
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until the daemon process has exited, and reports whether it has.
func (n *Node) waitGone(timeout time.Duration) bool {
	if n.daemon == nil {
		return true
	}
	select {
	case <-n.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// containerPIDs are the processes of the node's containers: every pid in the cgroups below
// the node's parent cgroup.
func (n *Node) containerPIDs() []int {
	var pids []int
	filepath.WalkDir(filepath.Join("/sys/fs/cgroup/pids", n.cgroup), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// stop ends the node's sshd and daemon (SIGTERM: the daemon stops its containers; SIGKILL
// after 30 s), then kills whatever of it is left: container processes, containerd shims of its
// namespace.
func (n *Node) stop() []error {
	var errs []error
	n.stopSSHD()
	if n.daemon != nil && !n.waitGone(0) {
		n.daemon.Process.Signal(syscall.SIGTERM)
		if !n.waitGone(30 * time.Second) {
			errs = append(errs, fmt.Errorf("dockerd of %s did not stop within 30 s: killed", n.Name))
			n.daemon.Process.Kill()
			n.waitGone(5 * time.Second)
		}
	}
	n.killContainerd()
	for _, pid := range n.containerPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Shims of a killed containerd outlive it; they name the node's containerd namespace.
	for _, pid := range processesWithArg("-namespace", n.Name) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return errs
}

func (n *Node) stopSSHD() {
	if n.sshd != nil && n.sshd.Process != nil {
		n.sshd.Process.Kill()
		n.sshd = nil
	}
}

// processesWithArg are the pids whose command line has flag followed by value.
func processesWithArg(flag, value string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == value {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// cleanup removes everything the cluster created, in reverse order, and fails the test for
// what it could not remove.
func (c *Cluster) cleanup() {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.stop()...)
	}
	// Mounts the daemons left (overlay layers, netns files, the sshd's private namespace is
	// gone with its process), deepest first.
	for _, n := range c.Nodes {
		unmountBelow(n.execDir)
		unmountBelow(n.dataDir)
	}
	for _, n := range c.Nodes {
		if err := run("ip", "netns", "del", n.Name); err != nil {
			errs = append(errs, err)
		}
		os.RemoveAll(n.execDir)
		os.Remove(n.Socket)
		os.Remove(n.pidFile)
		// Every hierarchy: v1 controllers, systemd's and the unified one.
		ctls, _ := os.ReadDir("/sys/fs/cgroup")
		for _, ctl := range ctls {
			dir := filepath.Join("/sys/fs/cgroup", ctl.Name(), n.cgroup)
			removeCgroupTree(dir)
			if _, err := os.Stat(dir); err == nil {
				errs = append(errs, fmt.Errorf("cgroup %s is left", dir))
			}
		}
	}
	if c.Bridge != "" && c.Gateway != "" {
		if err := run("iptables", "-D", "FORWARD", "-i", c.Bridge, "-o", c.Bridge, "-j", "ACCEPT"); err != nil {
			errs = append(errs, err)
		}
		if err := run("ip", "link", "del", c.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.removeCerts()...)
	if c.SSH.User != "" {
		if err := run("userdel", "--remove", c.SSH.User); err != nil {
			errs = append(errs, err)
		}
	}
	if c.t.Failed() {
		for _, n := range c.Nodes {
			c.t.Logf("cluster: dockerd log of %s:\n%s", n.Name, n.Log(20))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.t.Errorf("cluster %s cleanup: %v", c.ID, err)
	}
}

// removeCerts removes the CertsDir entries of the cluster's addresses, and CertsDir when the
// cluster's run made it and it is empty. An entry left is an error: the code under test should
// have removed what it wrote.
func (c *Cluster) removeCerts() []error {
	var errs []error
	if c.Gateway == "" {
		return nil
	}
	prefix := strings.TrimSuffix(c.Gateway, "1")
	entries, _ := os.ReadDir(CertsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			errs = append(errs, fmt.Errorf("%s/%s was left: removed", CertsDir, e.Name()))
			os.RemoveAll(filepath.Join(CertsDir, e.Name()))
		}
	}
	if c.certsDirMade {
		os.Remove(CertsDir) // only when empty
	}
	return errs
}

func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// removeCgroupTree removes a cgroup directory and its children (empty ones: the processes are
// gone by now).
func removeCgroupTree(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func must(t testing.TB, name string, args ...string) {
	t.Helper()
	if err := run(name, args...); err != nil {
		t.Fatalf("cluster: %v", err)
	}
}

func mustOut(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("cluster: %s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}
