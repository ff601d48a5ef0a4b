package main

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every config key Pulumi.yaml declares has a default, or is a secret every stack must set
// (appDbPassword): Pulumi refuses to run a stack that lacks a declared key without a default
// ("missing configuration value"), so an optional key whose unset state means something stays out
// of the declarations, in the comment beside them. A merge once declared notes:managerLabels
// without a default, and every stack stopped loading.
func TestDeclaredConfigKeysHaveDefaults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var project struct {
		Config map[string]map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(b, &project); err != nil {
		t.Fatal(err)
	}
	if len(project.Config) < 10 {
		t.Fatalf("Pulumi.yaml declares %d config keys; expected the stack's settings", len(project.Config))
	}
	required := map[string]bool{"appDbPassword": true}
	for key, decl := range project.Config {
		if _, ok := decl["default"]; !ok && !(required[key] && decl["secret"] == true) {
			t.Errorf("Pulumi.yaml: config %s has no default, so every stack without it fails to load", key)
		}
	}
}
