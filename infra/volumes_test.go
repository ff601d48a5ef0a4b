package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestValidateVolumeDriverOpts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		external bool
		backups  bool
		opts     map[string]map[string]string
		want     []string // substrings of the error; none: valid
	}{
		{name: "bind", backups: true, opts: map[string]map[string]string{
			"pgdata":  {"type": "none", "device": "/mnt/pgdata", "o": "bind"},
			"backups": {"type": "none", "device": "/mnt/backups", "o": "bind"},
		}},
		{name: "block device", opts: map[string]map[string]string{"pgdata": {"type": "ext4", "device": "/dev/sdb1"}}},
		{name: "unknown option", opts: map[string]map[string]string{"pgdata": {"type": "ext4", "device": "/dev/sdb1", "size": "1g"}},
			want: []string{"notes:dbVolumeDriverOpts", `unknown option "size"`}},
		{name: "no device", opts: map[string]map[string]string{"pgdata": {"type": "none", "o": "bind"}},
			want: []string{"notes:dbVolumeDriverOpts", "device is required"}},
		{name: "relative bind", opts: map[string]map[string]string{"pgdata": {"type": "none", "device": "mnt/pgdata", "o": "bind"}},
			want: []string{"notes:dbVolumeDriverOpts", "absolute path"}},
		{name: "tmpfs", backups: true, opts: map[string]map[string]string{"backups": {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}},
			want: []string{"notes:backupVolumeDriverOpts", "loses the data"}},
		{name: "database options with an external database", external: true,
			opts: map[string]map[string]string{"pgdata": {"type": "ext4", "device": "/dev/sdb1"}},
			want: []string{"notes:dbVolumeDriverOpts", "databaseUrl"}},
		{name: "backup options without backups", opts: map[string]map[string]string{"backups": {"type": "ext4", "device": "/dev/sdc1"}},
			want: []string{"notes:backupVolumeDriverOpts", "notes:backups"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			c.ExternalDB, c.BackupsEnabled, c.VolumeDriverOpts = tc.external, tc.backups, tc.opts
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %v", tc.opts)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The options reach the volumes on both engines, and a volume without options gets none (an
// empty map would be a change to every existing stack's volumes).
func TestVolumeDriverOptsReachTheVolumes(t *testing.T) {
	set := map[string]string{
		"notes:dbVolumeDriverOpts":     `{"type":"none","device":"/mnt/pgdata","o":"bind"}`,
		"notes:backupVolumeDriverOpts": `{"type":"ext4","device":"/dev/sdc1"}`,
	}
	containers := stackConfig(t, "dev")
	maps.Copy(containers, set)
	for engine, cfg := range map[string]map[string]string{"containers": containers, "swarm": swarmConfig(t, set)} {
		t.Run(engine, func(t *testing.T) {
			m := mustDeploy(t, "dev", cfg)
			want := map[string]string{
				"notes-dev-net-pgdata":  "device=/mnt/pgdata o=bind type=none",
				"notes-dev-net-backups": "device=/dev/sdc1 type=ext4",
			}
			seen := 0
			for _, v := range m.byType(volumeT) {
				got := driverOpts(v)
				if got != want[v.Name] {
					t.Errorf("volume %s: driverOpts %q, want %q", v.Name, got, want[v.Name])
				}
				if _, ok := want[v.Name]; ok {
					seen++
				}
			}
			if seen != len(want) {
				t.Errorf("%d of the volumes %v declared", seen, want)
			}
		})
	}
	t.Run("unset", func(t *testing.T) {
		m := mustDeploy(t, "dev", stackConfig(t, "dev"))
		for _, v := range m.byType(volumeT) {
			if _, ok := v.Inputs["driverOpts"]; ok {
				t.Errorf("volume %s has driverOpts %v without the config keys", v.Name, v.Inputs["driverOpts"])
			}
		}
	})
	t.Run("not a map", func(t *testing.T) {
		cfg := stackConfig(t, "dev")
		cfg["notes:dbVolumeDriverOpts"] = `["type=none"]`
		err := deploy(t, "dev", cfg, &mocks{})
		if err == nil || !strings.Contains(err.Error(), "notes:dbVolumeDriverOpts") {
			t.Errorf("deploy with a list for the options: %v, want an error naming notes:dbVolumeDriverOpts", err)
		}
	})
}

// driverOpts is a volume's driverOpts input as sorted key=value pairs.
func driverOpts(v *mockRes) string {
	o := obj(prop(v, "driverOpts"))
	var kv []string
	for k, val := range o {
		kv = append(kv, string(k)+"="+str(val))
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}
