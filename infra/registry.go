package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/registry-trust.sh
var registryTrustScript string

// OwnRegistry reports whether the stack runs its own registry: engine swarm with workers and
// no notes:pushRegistry. Every node pulls the app image from it.
func (c *Config) OwnRegistry() bool {
	return c.Engine == EngineSwarm && c.Clustered() && c.PushRegistry == ""
}

// ImageRegistry is where the app image is pushed and every node pulls it from:
// notes:pushRegistry, the stack's own registry on the manager (host:registryPort, the host
// the workers reach the manager by), or "" (one host: the image stays on the daemon that
// built it).
func (c *Config) ImageRegistry() string {
	switch {
	case c.PushRegistry != "":
		return c.PushRegistry
	case c.OwnRegistry():
		return net.JoinHostPort(c.DockerHost.Host, strconv.Itoa(c.RegistryPort))
	}
	return ""
}

// registryPort is the registry's port inside its task.
const registryPort = 5000

// Where the registry's task finds its certificate and key.
const (
	registryCertFile = "/etc/docker/registry/tls.crt"
	registryKeyFile  = "/run/secrets/registry-tls.key"
)

// ownRegistry is the stack's registry and what makes the nodes trust it.
type ownRegistry struct {
	service *docker.Service
	// push is what the build's push waits for: the service and the manager's trust.
	push []pulumi.Resource
	// pull is what the app service waits for: every node trusts the registry.
	pull []pulumi.Resource
}

// registry is phase registry, only with OwnRegistry: a registry:2 service pinned to the manager
// (its storage is a volume there), its port published in host mode on notes:registryPort. It
// speaks TLS with a server certificate for the manager's address, signed by a CA of the stack's
// own (registryKeys); each node's daemon trusts that CA through certs.d (registry-trust.sh),
// the manager's too, since its daemon pushes. With notes:registryInsecure it speaks plain HTTP,
// and the nodes' daemons must list it in --insecure-registry already.
func (d *swarmDeploy) registry() (ownRegistry, error) {
	cfg := d.cfg
	var r ownRegistry
	name := cfg.Name("registry")
	addr := cfg.ImageRegistry()
	vol, err := docker.NewVolume(d.ctx, name+"-data", &docker.VolumeArgs{
		Name:   pulumi.String(name),
		Labels: volumeLabels(cfg.Stack, "registry"),
	}, d.parent, d.prov)
	if err != nil {
		return r, err
	}
	spec := docker.ServiceTaskSpecContainerSpecArgs{
		Image: pulumi.String(cfg.RegistryImage),
		Mounts: docker.ServiceTaskSpecContainerSpecMountArray{
			docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: vol.Name, Target: pulumi.String("/var/lib/registry")},
		},
		Env:     pulumi.StringMap{},
		Labels:  taskLabels(cfg.Stack, "registry"),
		Sysctl:  pulumi.StringMap{},
		Secrets: docker.ServiceTaskSpecContainerSpecSecretArray{},
		Configs: docker.ServiceTaskSpecContainerSpecConfigArray{},
	}
	res := swarmRes{ctx: d.ctx, stack: cfg.Stack, role: "registry-tls-key", opts: []pulumi.ResourceOption{d.parent, d.prov}}
	var caPEM pulumi.StringOutput
	if !cfg.RegistryInsecure {
		keys, err := newRegistryKeys(d.ctx, name+"-keys", d.parent)
		if err != nil {
			return r, err
		}
		// One part of the TLS material derived from the keys (registryCerts is cheap).
		part := func(f func(registryTLS) string) pulumi.StringOutput {
			return keys.ApplyT(func(k string) (string, error) {
				t, err := registryCerts(k, cfg.DockerHost.Host)
				return f(t), err
			}).(pulumi.StringOutput)
		}
		caPEM = pulumi.Unsecret(part(func(t registryTLS) string { return t.CA })).(pulumi.StringOutput)
		// The certificate is known only as an output (it is derived from the secret keys): a
		// Docker config named after its content, replaced like swarmRes.config.
		cert := pulumi.Unsecret(part(func(t registryTLS) string { return t.Cert })).(pulumi.StringOutput)
		certCfg, err := docker.NewServiceConfig(d.ctx, objectName(cfg.Stack, "registry-tls-cert"), &docker.ServiceConfigArgs{
			Name: cert.ApplyT(func(c string) string {
				return objectName(cfg.Stack, "registry-tls-cert", sha256Hex([]byte(c))[:12])
			}).(pulumi.StringOutput),
			Data: cert.ApplyT(func(c string) string { return base64.StdEncoding.EncodeToString([]byte(c)) }).(pulumi.StringOutput),
		}, d.parent, d.prov, createBeforeDelete)
		if err != nil {
			return r, err
		}
		key, err := res.secret(pulumi.ToSecret(part(func(t registryTLS) string { return t.Key })).(pulumi.StringOutput))
		if err != nil {
			return r, err
		}
		spec.Configs = docker.ServiceTaskSpecContainerSpecConfigArray{configFile(certCfg, registryCertFile, "0", 0o444)}
		spec.Secrets = docker.ServiceTaskSpecContainerSpecSecretArray{secretFile(key, registryKeyFile, "0", 0o400)}
		spec.Env = pulumi.StringMap{
			"REGISTRY_HTTP_TLS_CERTIFICATE": pulumi.String(registryCertFile),
			"REGISTRY_HTTP_TLS_KEY":         pulumi.String(registryKeyFile),
		}
	}
	r.service, err = docker.NewService(d.ctx, name, &docker.ServiceArgs{
		Name:   pulumi.String(name),
		Labels: serviceLabels(cfg.Stack, "registry"),
		Mode:   replicated(1),
		EndpointSpec: docker.ServiceEndpointSpecArgs{
			Mode:  pulumi.String("dnsrr"),
			Ports: docker.ServiceEndpointSpecPortArray{hostPort(registryPort, cfg.RegistryPort)},
		},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec:     spec,
			NetworksAdvanceds: d.edgeNets, // reached by the daemons on its host port, not over the overlay
			// Its volume is on the manager, and so is the daemon that pushes.
			Placement:     docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray([]string{"node.role==manager"})},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 5*time.Second, "rollback"), // one task owns the port
		ConvergeConfig: converge(2 * time.Minute),
	}, d.parent, d.prov)
	if err != nil {
		return r, err
	}
	r.push = []pulumi.Resource{r.service}
	if cfg.RegistryInsecure {
		return r, nil
	}

	// Every node trusts the CA; the manager first (its daemon pushes), each worker after its
	// join. A node that is gone by the delete is left as it is.
	trust := func(on OnHost, node string, after pulumi.Resource) (*local.Command, error) {
		add, env := on.Script(registryTrustScript, "add", addr, cfg.NginxImage)
		remove, _ := on.Script(registryTrustScript, "remove", addr, cfg.NginxImage)
		return local.NewCommand(d.ctx, name+"-trust-"+node, &local.CommandArgs{
			Create:      pulumi.String(add),
			Delete:      pulumi.String(remove + ` || echo "phase registry: the node did not answer: its certs.d entry stays" >&2`),
			Stdin:       caPEM,
			Environment: env,
			Triggers:    pulumi.Array{caPEM, pulumi.String(addr)},
			Logging:     local.LoggingStderr,
		}, d.parent, pulumi.DependsOn([]pulumi.Resource{after}))
	}
	mgr, err := trust(d.on, "manager", d.cluster.labels)
	if err != nil {
		return r, err
	}
	r.push = append(r.push, mgr)
	r.pull = []pulumi.Resource{mgr}
	for i, w := range cfg.Workers {
		c, err := trust(NewOnHost(w.Host, cfg.SSHOpts), workerName(w.Host), d.cluster.workers[i])
		if err != nil {
			return r, err
		}
		r.pull = append(r.pull, c)
	}
	return r, nil
}

// newRegistryKeys are the private keys of the stack's registry CA and of its server
// certificate: two Ed25519 keys (PKCS#8 PEM, CA first) from crypto/rand, made on the first
// `pulumi up` and kept in the state as a secret, as newPlaceholderKey keeps its key.
func newRegistryKeys(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	var keys string
	for range 2 {
		k, err := newEd25519KeyPEM()
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("registry key: %w", err)
		}
		keys += k
	}
	return keptSecret(ctx, name, keys, opts...)
}

// keptSecret keeps value, made on the first `pulumi up`, in the state as a secret: a command
// that `cat`s its (secret) stdin, whose later values are ignored. Nothing is logged.
func keptSecret(ctx *pulumi.Context, name, value string, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	cmd, err := local.NewCommand(ctx, name, &local.CommandArgs{
		Create:  pulumi.String("cat"),
		Stdin:   pulumi.ToSecret(pulumi.String(value)).(pulumi.StringOutput),
		Logging: local.LoggingNone,
	}, append(opts,
		pulumi.IgnoreChanges([]string{"stdin"}),
		pulumi.AdditionalSecretOutputs([]string{"stdout"}),
	)...)
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return pulumi.ToSecret(cmd.Stdout).(pulumi.StringOutput), nil
}

// registryTLS is the PEM of the stack registry's CA certificate, its server certificate and
// the server's private key.
type registryTLS struct {
	CA, Cert, Key string
}

// registryCerts derives the registry's CA certificate and its server certificate for host (an
// IP address or a DNS name: the manager as the nodes reach it) from keysPEM (newRegistryKeys).
// Ed25519 signatures and fixed templates make them the same bytes for the same keys and host,
// so the program's inputs do not change between runs, and a new manager address gives a new
// server certificate under the same CA (the nodes' trust does not change).
func registryCerts(keysPEM, host string) (registryTLS, error) {
	var keys []ed25519.PrivateKey
	var keyPEMs [][]byte
	rest := []byte(keysPEM)
	for len(keys) < 2 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return registryTLS{}, errors.New("registry keys: want two PEM private keys")
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return registryTLS{}, fmt.Errorf("registry keys: %w", err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return registryTLS{}, fmt.Errorf("registry keys: %T, want an Ed25519 key", k)
		}
		keys = append(keys, ek)
		keyPEMs = append(keyPEMs, pem.EncodeToMemory(b))
	}
	notBefore, notAfter := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2044, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "notes stack registry CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(zeroReader{}, ca, ca, keys[0].Public(), keys[0])
	if err != nil {
		return registryTLS{}, fmt.Errorf("registry CA: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return registryTLS{}, fmt.Errorf("registry CA: %w", err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		srv.IPAddresses = []net.IP{ip}
	} else {
		srv.DNSNames = []string{host}
	}
	srvDER, err := x509.CreateCertificate(zeroReader{}, srv, ca, keys[1].Public(), keys[0])
	if err != nil {
		return registryTLS{}, fmt.Errorf("registry certificate: %w", err)
	}
	return registryTLS{
		CA:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})),
		Key:  string(keyPEMs[1]),
	}, nil
}

// registryPortsInUse are the ports of the manager the registry's port must not take.
func (c *Config) registryPortsInUse() []int {
	ports := []int{c.HTTPPort}
	if c.TLS != nginx.TLSOff {
		ports = append(ports, c.HTTPSPort)
	}
	return slices.DeleteFunc(ports, func(p int) bool { return p == 0 })
}
