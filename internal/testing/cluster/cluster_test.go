//go:build e2e

package cluster

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCluster starts two nodes, checks that each answers over its socket and over ssh as
// itself (not as the host's daemon), that images copied in are there, and that a killed node
// comes back on its data.
func TestCluster(t *testing.T) {
	c := New(t, 2)
	host, err := run2("docker", "info", "--format", "{{.DockerRootDir}}")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{host: true}
	for _, n := range c.Nodes {
		id, err := n.SSH("docker", "info", "--format", "{{.DockerRootDir}}")
		if err != nil {
			t.Fatal(err)
		}
		if ids[id] {
			t.Errorf("node %s answers over ssh as daemon %s, which the host or another node is", n.Name, id)
		}
		ids[id] = true
	}
	c.LoadImages(c.Nodes, "nginx:1.27")
	for _, n := range c.Nodes {
		if _, err := n.Docker("image", "inspect", "nginx:1.27"); err != nil {
			t.Error(err)
		}
	}
	// The nodes reach each other across the bridge.
	n1, n2 := c.Nodes[0], c.Nodes[1]
	if _, err := n1.Docker("run", "-d", "--name", "web", "-p", "8080:80", "nginx:1.27"); err != nil {
		t.Fatal(err)
	}
	if out, err := n2.SSH("bash", "-c", "'exec 3<>/dev/tcp/"+n1.Addr+"/8080 && printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3 && head -1 <&3'"); err != nil || !strings.Contains(out, "200") {
		t.Errorf("node 2 -> node 1:8080: %q %v", out, err)
	}
	n2.Kill()
	if _, err := n2.Docker("info"); err == nil {
		t.Error("a killed node's daemon still answers")
	}
	n2.Restart()
	if _, err := n2.Docker("image", "inspect", "nginx:1.27"); err != nil {
		t.Errorf("the restarted node lost its images: %v", err)
	}
}

func run2(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
