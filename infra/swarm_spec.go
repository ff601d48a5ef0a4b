package main

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// swarmRes declares the stack's Docker secrets and configs for one role.
type swarmRes struct {
	ctx   *pulumi.Context
	stack string
	role  string
	opts  []pulumi.ResourceOption
}

// secret is a Docker secret with a content-hashed name: a new value is a new secret, created
// (and the services moved to it) before the old one is deleted. The name carries 48 bits of a
// hash of the stack, role and value, not the value.
func (r swarmRes) secret(value pulumi.StringOutput, opts ...pulumi.ResourceOption) (*docker.Secret, error) {
	name := pulumi.Unsecret(value.ApplyT(func(v string) string {
		return objectName(r.stack, r.role, sha256Hex([]byte("notes secret"), []byte(r.stack), []byte(r.role), []byte(v))[:12])
	})).(pulumi.StringOutput)
	data := pulumi.ToSecret(value.ApplyT(func(v string) string {
		return base64.StdEncoding.EncodeToString([]byte(v))
	})).(pulumi.StringOutput)
	return docker.NewSecret(r.ctx, objectName(r.stack, r.role), &docker.SecretArgs{
		Name:   name,
		Data:   data,
		Labels: docker.SecretLabelArray{docker.SecretLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(r.stack)}},
	}, append(append(append([]pulumi.ResourceOption{}, r.opts...), createBeforeDelete), opts...)...)
}

// config is a Docker config (a file that is not secret) with a content-hashed name, replaced
// like secret.
func (r swarmRes) config(content []byte) (*docker.ServiceConfig, error) {
	return docker.NewServiceConfig(r.ctx, objectName(r.stack, r.role), &docker.ServiceConfigArgs{
		Name: pulumi.String(objectName(r.stack, r.role, sha256Hex(content)[:12])),
		Data: pulumi.String(base64.StdEncoding.EncodeToString(content)),
	}, append(append([]pulumi.ResourceOption{}, r.opts...), createBeforeDelete)...)
}

func secretFile(s *docker.Secret, path, uid string, mode int) docker.ServiceTaskSpecContainerSpecSecretArgs {
	return docker.ServiceTaskSpecContainerSpecSecretArgs{
		SecretId: s.ID(), SecretName: s.Name, FileName: pulumi.String(path),
		FileUid: pulumi.String(uid), FileGid: pulumi.String(uid), FileMode: pulumi.Int(mode),
	}
}

func configFile(c *docker.ServiceConfig, path, uid string, mode int) docker.ServiceTaskSpecContainerSpecConfigArgs {
	return docker.ServiceTaskSpecContainerSpecConfigArgs{
		ConfigId: c.ID(), ConfigName: c.Name, FileName: pulumi.String(path),
		FileUid: pulumi.String(uid), FileGid: pulumi.String(uid), FileMode: pulumi.Int(mode),
	}
}

// tmpfsMount is a tmpfs at target. Without a size: the provider (4.10) panics on
// tmpfsOptions.sizeBytes (an int read as int64); the pages count against the task's memory
// limit anyway.
func tmpfsMount(target string) docker.ServiceTaskSpecContainerSpecMountArgs {
	return docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("tmpfs"), Target: pulumi.String(target)}
}

// tmpfsMounts are a tmpfsMount at each target (mode 1777, Docker's default).
func tmpfsMounts(targets []string) docker.ServiceTaskSpecContainerSpecMountArray {
	var m docker.ServiceTaskSpecContainerSpecMountArray
	for _, t := range targets {
		m = append(m, tmpfsMount(t))
	}
	return m
}

// hostPort publishes target on published of the task's node (host mode: no ingress mesh, which
// needs IPVS).
func hostPort(target, published int) docker.ServiceEndpointSpecPortArgs {
	return docker.ServiceEndpointSpecPortArgs{
		TargetPort: pulumi.Int(target), PublishedPort: pulumi.Int(published),
		PublishMode: pulumi.String("host"), Protocol: pulumi.String("tcp"),
	}
}

// swarmDuration is d as the provider reads durations back ("1m", not Go's "1m0s"), so an
// unchanged value shows no diff.
func swarmDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func replicated(n int) docker.ServiceModeArgs {
	return docker.ServiceModeArgs{Replicated: docker.ServiceModeReplicatedArgs{Replicas: pulumi.Int(n)}}
}

func updateConfig(order string, monitor time.Duration, failure string) docker.ServiceUpdateConfigArgs {
	return docker.ServiceUpdateConfigArgs{
		Parallelism: pulumi.Int(1), Order: pulumi.String(order), FailureAction: pulumi.String(failure),
		Monitor: pulumi.String(swarmDuration(monitor)), Delay: pulumi.String("1s"), MaxFailureRatio: pulumi.String("0.0"),
	}
}

func rollbackConfig(monitor time.Duration) docker.ServiceRollbackConfigArgs {
	return docker.ServiceRollbackConfigArgs{
		Parallelism: pulumi.Int(1), Order: pulumi.String("start-first"), FailureAction: pulumi.String("pause"),
		Monitor: pulumi.String(swarmDuration(monitor)), Delay: pulumi.String("1s"), MaxFailureRatio: pulumi.String("0.0"),
	}
}

func converge(timeout time.Duration) docker.ServiceConvergeConfigArgs {
	return docker.ServiceConvergeConfigArgs{Delay: pulumi.String("2s"), Timeout: pulumi.String(swarmDuration(timeout))}
}

func restartAny() docker.ServiceTaskSpecRestartPolicyArgs {
	return docker.ServiceTaskSpecRestartPolicyArgs{Condition: pulumi.String("any"), Delay: pulumi.String("2s"), Window: pulumi.String("0s")}
}

func jsonLogs() docker.ServiceTaskSpecLogDriverArgs {
	return docker.ServiceTaskSpecLogDriverArgs{Name: pulumi.String("json-file"), Options: logOpts()}
}

func serviceLabels(stack, role string) docker.ServiceLabelArray {
	return stackLabels(stack, role, func(l, v pulumi.String) docker.ServiceLabelInput { return docker.ServiceLabelArgs{Label: l, Value: v} })
}

// taskLabels are on every task's container, as on engine containers' containers. They never
// change: the provider replaces a service (delete first: the name is fixed) when its tasks'
// labels or sysctls change, and reads an unset sysctl as unknown in a preview, which also
// counts as a change; every container spec therefore sets Sysctl to an empty map.
func taskLabels(stack, role string) docker.ServiceTaskSpecContainerSpecLabelArray {
	return stackLabels(stack, role, func(l, v pulumi.String) docker.ServiceTaskSpecContainerSpecLabelInput {
		return docker.ServiceTaskSpecContainerSpecLabelArgs{Label: l, Value: v}
	})
}
