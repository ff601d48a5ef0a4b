package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// The config keys that give a data volume options of Docker's local volume driver (what `docker
// volume create -o` takes): the way to put the database or the dumps on a device of their own
// (a dedicated disk, a size-limited filesystem), so that a full disk there fills neither the
// other volume nor the host's root filesystem. Unset: a plain volume under Docker's data root.
var volumeOptKeys = map[string]string{
	"pgdata":  "dbVolumeDriverOpts",
	"backups": "backupVolumeDriverOpts",
}

// readVolumeDriverOpts reads the optional driver options of the volume roles in volumeOptKeys.
func readVolumeDriverOpts(c *config.Config) (map[string]map[string]string, []error) {
	opts := map[string]map[string]string{}
	var errs []error
	for role, key := range volumeOptKeys {
		var o map[string]string
		if err := c.TryObject(key, &o); err != nil {
			if !errors.Is(err, config.ErrMissingVar) {
				errs = append(errs, keyErr(key, "must be a map of local volume driver options {type: ..., device: ..., o: ...}: %v", err))
			}
			continue
		}
		if len(o) > 0 {
			opts[role] = o
		}
	}
	return opts, errs
}

// validateVolumeDriverOpts checks options of the local driver, which takes type, device and o
// (mount(8)'s filesystem type, source and options) and refuses anything else only when a
// container first mounts the volume.
func validateVolumeDriverOpts(key string, o map[string]string) error {
	var problems []string
	for k := range o {
		if !slices.Contains([]string{"type", "device", "o"}, k) {
			problems = append(problems, fmt.Sprintf("unknown option %q (the local driver takes type, device and o)", k))
		}
	}
	for _, k := range []string{"type", "device"} {
		if strings.TrimSpace(o[k]) == "" {
			problems = append(problems, fmt.Sprintf("%s is required (for example type: none, device: /mnt/pgdata, o: bind; or type: ext4, device: /dev/sdb1)", k))
		}
	}
	if o["type"] == "tmpfs" {
		// Docker mounts a local volume when its first container starts and unmounts it when
		// the last one stops: every restart of the container would start from an empty volume.
		problems = append(problems, "type tmpfs loses the data whenever the container stops (Docker unmounts the volume); mount a tmpfs on the host and bind it (type: none, device: /mnt/dir, o: bind) if that is what you want")
	}
	if o["type"] == "none" && o["device"] != "" && !strings.HasPrefix(o["device"], "/") {
		problems = append(problems, fmt.Sprintf("device %q must be an absolute path on the Docker host for a bind (type none)", o["device"]))
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return keyErr(key, "%s", strings.Join(problems, "; "))
}
