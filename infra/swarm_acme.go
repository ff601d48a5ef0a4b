package main

import (
	"fmt"
	"time"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Where the tls=acme placeholder is mounted in the nginx task on engine swarm;
// scripts/cert-watch.sh copies it into /etc/nginx/tls before nginx starts when certbot has no
// certificate yet (a mounted file cannot be replaced by a link later).
const swarmPlaceholderDir = "/etc/nginx/" + placeholderDir

// swarmNginxACME is what tls=acme adds to the nginx task on engine swarm.
type swarmNginxACME struct {
	configs docker.ServiceTaskSpecContainerSpecConfigArray
	secrets docker.ServiceTaskSpecContainerSpecSecretArray
	mounts  docker.ServiceTaskSpecContainerSpecMountArray
	env     pulumi.StringMap
	trust   pulumi.StringOutput // the placeholder and notes:acmeCaBundle, for the smoke check
}

// nginxACME is the nginx side of tls=acme on engine swarm: the cert-watch script, the
// placeholder certificate (its key a secret, as on engine containers) and certbot's volumes.
func (d *swarmDeploy) nginxACME() (swarmNginxACME, error) {
	cfg := d.cfg
	watch, err := d.res("nginx-cert-watch").config([]byte(certWatchScript))
	if err != nil {
		return swarmNginxACME{}, err
	}
	key, err := newPlaceholderKey(d.ctx, cfg.Name("nginx", "placeholder-key"), d.parent)
	if err != nil {
		return swarmNginxACME{}, err
	}
	cert := key.ApplyT(func(k string) (string, error) {
		c, err := placeholderCert(cfg.Domain, k)
		return string(c), err
	}).(pulumi.StringOutput)
	certSecret, err := d.res("nginx-placeholder-cert").secret(cert)
	if err != nil {
		return swarmNginxACME{}, err
	}
	keySecret, err := d.res("nginx-placeholder-key").secret(key)
	if err != nil {
		return swarmNginxACME{}, err
	}
	return swarmNginxACME{
		configs: docker.ServiceTaskSpecContainerSpecConfigArray{
			configFile(watch, "/docker-entrypoint.d/90-notes-cert-watch.sh", "0", 0o555),
		},
		secrets: docker.ServiceTaskSpecContainerSpecSecretArray{
			secretFile(certSecret, swarmPlaceholderDir+"/fullchain.pem", "0", 0o444),
			secretFile(keySecret, swarmPlaceholderDir+"/privkey.pem", fmt.Sprint(nginxUID), 0o400),
		},
		// cert-watch.sh links or copies the certificate into /etc/nginx/tls at every start.
		mounts: append(d.certbotMounts(true), tmpfsMount("/etc/nginx/tls")),
		env: pulumi.StringMap{
			"NOTES_CERT_DOMAIN":      pulumi.String(cfg.Domain),
			"NOTES_CERT_PLACEHOLDER": pulumi.String(swarmPlaceholderDir),
		},
		trust: pulumi.Unsecret(pulumi.Sprintf("%s%s", cert, cfg.ACMECABundle)).(pulumi.StringOutput),
	}, nil
}

// certbotMounts are the volumes nginx and certbot share: certbot writes, nginx reads. Named
// volumes are local to a node, which is why certbot runs where nginx does (placeOnEdgeNode).
func (d *swarmDeploy) certbotMounts(readOnly bool) docker.ServiceTaskSpecContainerSpecMountArray {
	return docker.ServiceTaskSpecContainerSpecMountArray{
		docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: d.net.Volumes["letsencrypt"], Target: pulumi.String(letsencryptDir), ReadOnly: pulumi.Bool(readOnly)},
		docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: d.net.Volumes["acme-webroot"], Target: pulumi.String(acmeWebroot), ReadOnly: pulumi.Bool(readOnly)},
	}
}

// placeOnEdgeNode is the placement of nginx and certbot: the node labelled as the stack's edge.
func (d *swarmDeploy) placeOnEdgeNode() []string {
	return []string{fmt.Sprintf("node.labels.com.notes-stack.%s.edge==true", d.cfg.Stack)}
}

// certbot is the certbot service of tls=acme on engine swarm: the same loop, arguments and
// private-CA bundle as the certbot container on engine containers, one task on the edge node next
// to nginx (they share node-local volumes). No healthcheck: Swarm replaces an unhealthy task, and
// every new task runs certbot at once, so a lasting failure (a challenge that cannot be served)
// would ask the CA every half minute instead of every hour and run into its rate limits. A
// failure shows in the service's logs and in the loop's status file.
func (d *swarmDeploy) certbot(after pulumi.Resource) (*docker.Service, error) {
	cfg := d.cfg
	acme := ACMEArgs{Email: cfg.ACMEEmail, Server: cfg.ACMEDirectory(), CABundle: cfg.ACMECABundle}
	env := pulumi.StringMap{"NOTES_CERTBOT_STATUS": pulumi.String(certbotStatus), "NOTES_CERT_GROUP": pulumi.String(fmt.Sprint(nginxUID))}
	var configs docker.ServiceTaskSpecContainerSpecConfigArray
	if acme.CABundle != "" {
		bundle, err := d.res("certbot-ca-bundle").config([]byte(acme.CABundle))
		if err != nil {
			return nil, err
		}
		configs = append(configs, configFile(bundle, certbotCABundle, "0", 0o444))
		env["REQUESTS_CA_BUNDLE"] = pulumi.String(certbotCABundle)
	}
	name := cfg.Name("certbot")
	return docker.NewService(d.ctx, name, &docker.ServiceArgs{
		Name:         pulumi.String(name),
		Labels:       serviceLabels(cfg.Stack, "certbot"),
		Mode:         replicated(1),
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr")},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image:           pulumi.String(cfg.CertbotImage),
				Commands:        pulumi.ToStringArray([]string{"/bin/sh", "-c", certbotLoopScript, "sh"}),
				Args:            pulumi.ToStringArray(certbotArgs(cfg.Domain, acme)),
				Env:             env,
				Configs:         configs,
				Mounts:          append(d.certbotMounts(false), tmpfsMounts(certbotTmpfs)...),
				User:            pulumi.String(certbotUser),
				ReadOnly:        pulumi.Bool(true),
				CapDrops:        pulumi.ToStringArray([]string{"ALL"}),
				StopGracePeriod: pulumi.String("30s"),
				Labels:          taskLabels(cfg.Stack, "certbot"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: d.edgeNets,
			Placement:         docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray(d.placeOnEdgeNode())},
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(certbotMemoryMB << 20),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 10*time.Second, "pause"),
		ConvergeConfig: converge(2 * time.Minute),
	}, d.opts(pulumi.DependsOn([]pulumi.Resource{after}))...)
}
