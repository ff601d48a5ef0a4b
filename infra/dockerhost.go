package main

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// DockerHostKind is how the program reaches the Docker daemon.
type DockerHostKind int

const (
	// UnixHost is a local socket, unix:///path.
	UnixHost DockerHostKind = iota + 1
	// TCPHost is tcp://host:port: with TLS (notes:dockerTlsCa/Cert/Key) unless it is a
	// loopback address.
	TCPHost
	// SSHHost is ssh://[user@]host[:port]: the provider dials over ssh and the program's own
	// commands run on the host over ssh.
	SSHHost
)

// DockerHost is the parsed notes:dockerHost. It is parsed once, by ParseDockerHost during
// config loading, and passed around as this value: User, Host and Port are only set for ssh://
// (Host and Port also for tcp://), Path only for unix://.
type DockerHost struct {
	Kind DockerHostKind
	User string // ssh:// only; may be empty (ssh's own default)
	Host string // DNS name or IP literal (IPv6 without brackets)
	Port int    // ssh:// (default 22) and tcp:// (0 when the URL has none)
	Path string // unix:// socket path
	raw  string
}

// String is the original notes:dockerHost value, as the provider and DOCKER_HOST take it.
func (h DockerHost) String() string { return h.raw }

// IsSSH reports whether the host is reached over ssh.
func (h DockerHost) IsSSH() bool { return h.Kind == SSHHost }

// RemoteHost is the host name of a tcp:// or ssh:// daemon, and false for a local socket.
func (h DockerHost) RemoteHost() (string, bool) {
	return h.Host, h.Kind == TCPHost || h.Kind == SSHHost
}

// IsLoopback reports whether a tcp:// host is this machine (localhost or a loopback address):
// the only tcp:// daemon that may be reached without TLS.
func (h DockerHost) IsLoopback() bool {
	if h.Kind != TCPHost {
		return false
	}
	if strings.EqualFold(h.Host, "localhost") {
		return true
	}
	ip := net.ParseIP(h.Host)
	return ip != nil && ip.IsLoopback()
}

// ParseDockerHost parses unix:///path, tcp://host:port or ssh://[user@]host[:port]. For ssh://
// the user must be [A-Za-z0-9._-] not starting with '-', the host a DNS name or an IP literal
// (IPv6 in brackets), the port 1-65535: none of them can then be read as an ssh option or carry
// shell syntax.
func ParseDockerHost(s string) (DockerHost, error) {
	switch {
	case strings.HasPrefix(s, "unix:///"):
		return DockerHost{Kind: UnixHost, Path: strings.TrimPrefix(s, "unix://"), raw: s}, nil
	case strings.HasPrefix(s, "tcp://"):
		return parseTCP(s)
	case strings.HasPrefix(s, "ssh://"):
		return parseSSH(s)
	}
	return DockerHost{}, fmt.Errorf("%q must start with unix://, tcp:// or ssh://", s)
}

func parseSSH(h string) (DockerHost, error) {
	u, err := url.Parse(h)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" || u.Opaque != "" {
		return DockerHost{}, fmt.Errorf("%q must look like ssh://user@host[:port]", h)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return DockerHost{}, fmt.Errorf("%q: ssh:// host must not have a path, query or fragment", h)
	}
	if _, set := u.User.Password(); set {
		return DockerHost{}, fmt.Errorf("%q: no password in the URL; use an SSH key (notes:sshOpts -i KEY or ssh-agent)", h)
	}
	t := DockerHost{Kind: SSHHost, User: u.User.Username(), Port: 22, raw: h}
	if u.User != nil && !sshUserRE.MatchString(t.User) {
		return DockerHost{}, fmt.Errorf("%q: invalid user %q (letters, digits, '.', '_', '-', not starting with '-')", h, t.User)
	}
	if strings.HasSuffix(u.Host, ":") {
		return DockerHost{}, fmt.Errorf("%q: invalid port", h)
	}
	if err := t.setHostPort(u); err != nil {
		return DockerHost{}, err
	}
	return t, nil
}

// parseTCP checks a tcp://host:port Docker host: host a DNS name or IP literal, port 1-65535.
func parseTCP(h string) (DockerHost, error) {
	u, err := url.Parse(h)
	if err != nil || u.Hostname() == "" || u.User != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return DockerHost{}, fmt.Errorf("%q must look like tcp://host:port", h)
	}
	t := DockerHost{Kind: TCPHost, raw: h}
	if err := t.setHostPort(u); err != nil {
		return DockerHost{}, err
	}
	return t, nil
}

// setHostPort takes Host (a DNS name or IP literal) and, when the URL has one, Port (1-65535)
// from u.
func (t *DockerHost) setHostPort(u *url.URL) error {
	t.Host = u.Hostname()
	if err := validHost(t.Host); err != nil {
		return fmt.Errorf("%q: %v", t.raw, err)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return fmt.Errorf("%q: invalid port %q (1-65535)", t.raw, p)
		}
		t.Port = n
	}
	return nil
}

var sshUserRE = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// validHost accepts an IP literal or a DNS name (one label or more).
func validHost(h string) error {
	if ip := net.ParseIP(h); ip != nil {
		return nil
	}
	if !validDNSName(h, 1) {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
	}
	return nil
}
