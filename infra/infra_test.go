package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
)

// Test passwords: none of them may appear in clear in any resource input.
const (
	testDBPassword  = "db-secret-Pa55!"
	testAppPassword = "app-secret-Pa55@/"
	testAPIToken    = "api-token-0123456789abcdef"
)

// testSubnet is the stack network's subnet in the mocks.
const testSubnet = "172.31.7.0/24"

// mocks records every registered resource and fakes the outputs the program reads.
type mocks struct {
	mu        sync.Mutex
	resources []*mockRes
	// migrationExit is the exit status scripts/migrate.sh reports.
	migrationExit int
	// revision is what the revision command prints; "0a1b2c3d" when empty.
	revision string
}

type mockRes struct {
	Type, Name string
	Inputs     resource.PropertyMap
	Deps       []string
	PropDeps   map[string][]string
	Protect    bool
	Retain     bool
	DBRDefined bool
	DBR        bool
	Provider   string
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := &mockRes{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs, Provider: args.Provider, PropDeps: map[string][]string{}}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Deps = rpc.GetDependencies()
		for k, v := range rpc.GetPropertyDependencies() {
			r.PropDeps[k] = v.GetUrns()
		}
		r.Protect = rpc.GetProtect()
		r.Retain = rpc.GetRetainOnDelete()
		r.DBRDefined = rpc.GetDeleteBeforeReplaceDefined()
		r.DBR = rpc.GetDeleteBeforeReplace()
	}
	outs := args.Inputs.Copy()
	switch args.TypeToken {
	case "command:local:Command":
		switch {
		case strings.HasSuffix(args.Name, "-revision"):
			rev := m.revision
			if rev == "" {
				rev = "0a1b2c3d"
			}
			outs["stdout"] = resource.NewStringProperty(rev)
		case strings.HasSuffix(args.Name, "-image"):
			outs["stdout"] = resource.NewStringProperty("sha256:" + strings.Repeat("ab", 32))
		case str(args.Inputs["create"]) == "cat":
			// `cat` prints its stdin (the placeholder key), as the real command does.
			outs["stdout"] = resource.NewStringProperty(str(args.Inputs["stdin"]))
		case strings.HasSuffix(args.Name, "-digest"):
			outs["stdout"] = resource.NewStringProperty("pushed@sha256:" + strings.Repeat("ef", 32) + "\n")
		case strings.Contains(args.Name, "-swarm-worker-"):
			outs["stdout"] = resource.NewStringProperty("node-" + args.Name[strings.LastIndex(args.Name, "-worker-")+len("-worker-"):] + "\n")
		case strings.HasSuffix(args.Name, "-migrate"):
			if m.migrationExit != 0 {
				// scripts/migrate.sh exits with the migration's status; the command fails.
				return "", nil, fmt.Errorf("phase migrate: migration container x exited with status %d; replicas were not changed", m.migrationExit)
			}
			outs["stdout"] = resource.NewStringProperty("migration log line\nphase migrate: notes-x-migrate-0a1b2c3d exited 0\n")
		default:
			outs["stdout"] = resource.NewStringProperty("")
		}
	case "docker:index/remoteImage:RemoteImage":
		outs["imageId"] = resource.NewStringProperty("sha256:" + strings.Repeat("cd", 32))
	case "docker:index/network:Network":
		// Docker chooses the subnet.
		outs["ipamConfigs"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(
			resource.PropertyMap{"subnet": resource.NewStringProperty(testSubnet)})})
	}
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()
	return args.Name + "_id", outs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (m *mocks) byType(typ string) []*mockRes {
	var out []*mockRes
	for _, r := range m.resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *mocks) named(t *testing.T, name string) *mockRes {
	t.Helper()
	for _, r := range m.resources {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no resource named %q; have %v", name, m.names())
	return nil
}

func (m *mocks) has(name string) bool {
	for _, r := range m.resources {
		if r.Name == name {
			return true
		}
	}
	return false
}

func (m *mocks) names() []string {
	var n []string
	for _, r := range m.resources {
		n = append(n, r.Type+"::"+r.Name)
	}
	sort.Strings(n)
	return n
}

// stackConfig reads Pulumi.<stack>.yaml from the repository root and adds the test secrets.
func stackConfig(t *testing.T, stack string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "Pulumi."+stack+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]string{}
	for k, v := range f.Config {
		switch v := v.(type) {
		case string:
			cfg[k] = v
		default:
			j, _ := json.Marshal(v)
			cfg[k] = string(j)
		}
	}
	cfg["notes:dbPassword"] = testDBPassword
	cfg["notes:appDbPassword"] = testAppPassword
	cfg["notes:apiToken"] = testAPIToken
	return cfg
}

func withConfig(cfg map[string]string) pulumi.RunOption {
	return func(info *pulumi.RunInfo) {
		info.Config = cfg
		for _, k := range []string{"notes:dbPassword", "notes:appDbPassword", "notes:apiToken", "notes:databaseUrl", "notes:tlsCert", "notes:tlsKey",
			"notes:dockerTlsCa", "notes:dockerTlsCert", "notes:dockerTlsKey"} {
			if _, ok := cfg[k]; ok {
				info.ConfigSecretKeys = append(info.ConfigSecretKeys, k)
			}
		}
	}
}

func deploy(t *testing.T, stack string, cfg map[string]string, m *mocks) error {
	t.Helper()
	return pulumi.RunErr(func(ctx *pulumi.Context) error {
		c, err := LoadConfig(ctx)
		if err != nil {
			return err
		}
		_, err = NewStack(ctx, c)
		return err
	}, pulumi.WithMocks("notes", stack, m), withConfig(cfg))
}

func mustDeploy(t *testing.T, stack string, cfg map[string]string) *mocks {
	t.Helper()
	m := &mocks{}
	if err := deploy(t, stack, cfg, m); err != nil {
		t.Fatalf("deploy %s: %v", stack, err)
	}
	return m
}

// --- property helpers ---

func prop(r *mockRes, key string) resource.PropertyValue {
	return r.Inputs[resource.PropertyKey(key)]
}

func unsecret(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsOutput() {
		return v.OutputValue().Element
	}
	return v
}

func str(v resource.PropertyValue) string {
	v = unsecret(v)
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func num(v resource.PropertyValue) int {
	v = unsecret(v)
	if v.IsNumber() {
		return int(v.NumberValue())
	}
	return -1
}

func boolean(v resource.PropertyValue) bool {
	v = unsecret(v)
	return v.IsBool() && v.BoolValue()
}

func strs(v resource.PropertyValue) []string {
	v = unsecret(v)
	if !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		out = append(out, str(e))
	}
	return out
}

func obj(v resource.PropertyValue) resource.PropertyMap {
	v = unsecret(v)
	if v.IsObject() {
		return v.ObjectValue()
	}
	return nil
}

// isSecret reports whether v is a secret (or an output marked secret).
func isSecret(v resource.PropertyValue) bool {
	return v.IsSecret() || (v.IsOutput() && v.OutputValue().Secret)
}

// containsClear reports whether s appears anywhere in v outside a secret.
func containsClear(v resource.PropertyValue, s string) bool {
	switch {
	case isSecret(v):
		return false
	case v.IsString():
		return strings.Contains(v.StringValue(), s)
	case v.IsArray():
		for _, e := range v.ArrayValue() {
			if containsClear(e, s) {
				return true
			}
		}
	case v.IsObject():
		for _, e := range v.ObjectValue() {
			if containsClear(e, s) {
				return true
			}
		}
	case v.IsOutput():
		return containsClear(v.OutputValue().Element, s)
	}
	return false
}

func ports(r *mockRes) []resource.PropertyMap {
	v := unsecret(prop(r, "ports"))
	var out []resource.PropertyMap
	if v.IsArray() {
		for _, p := range v.ArrayValue() {
			out = append(out, obj(p))
		}
	}
	return out
}

// dependsOn reports whether r depends (explicitly or through an input) on the resource whose
// URN ends in "::"+name.
func dependsOn(r *mockRes, name string) bool {
	match := func(urn string) bool { return strings.HasSuffix(urn, "::"+name) }
	for _, d := range r.Deps {
		if match(d) {
			return true
		}
	}
	for _, ds := range r.PropDeps {
		for _, d := range ds {
			if match(d) {
				return true
			}
		}
	}
	return false
}

func urnOf(r *mockRes) string { return r.Name }

// renderedFiles decodes the nginx config command's stdin (base64 tar.gz).
func renderedFiles(t *testing.T, r *mockRes) map[string]string {
	t.Helper()
	files := map[string]string{}
	for name, f := range untarB64(t, str(prop(r, "stdin"))) {
		files[name] = f.content
	}
	return files
}

type tarFile struct {
	content string
	mode    int64
	uid     int
}

// untarB64 unpacks a base64 tar.gz (a command's stdin).
func untarB64(t *testing.T, b64 string) map[string]tarFile {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("stdin is not base64: %v", err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = tarFile{content: string(b), mode: h.Mode, uid: h.Uid}
	}
	return files
}

func replicas(m *mocks, stack string) []*mockRes {
	var out []*mockRes
	for _, r := range m.byType("docker:index/container:Container") {
		if regexp.MustCompile(`^notes-` + stack + `-app-\d+$`).MatchString(r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// containsAnywhere reports whether s appears anywhere in v, secret or not.
func containsAnywhere(v resource.PropertyValue, s string) bool {
	v = unsecret(v)
	switch {
	case v.IsString():
		return strings.Contains(v.StringValue(), s)
	case v.IsArray():
		for _, e := range v.ArrayValue() {
			if containsAnywhere(e, s) {
				return true
			}
		}
	case v.IsObject():
		for _, e := range v.ObjectValue() {
			if containsAnywhere(e, s) {
				return true
			}
		}
	case v.IsOutput():
		return containsAnywhere(v.OutputValue().Element, s)
	}
	return false
}

// checkSecretUpload: container r uploads file with a secret content that holds want, with the
// given permissions.
func checkSecretUpload(t *testing.T, r *mockRes, file, want, perm string) {
	t.Helper()
	for _, u := range unsecret(prop(r, "uploads")).ArrayValue() {
		u = unsecret(u)
		if !u.IsObject() || str(u.ObjectValue()["file"]) != file {
			continue
		}
		c := u.ObjectValue()["content"]
		if !isSecret(c) {
			t.Errorf("%s: upload %s is not secret", r.Name, file)
		}
		if !strings.Contains(str(c), want) {
			t.Errorf("%s: upload %s does not hold the secret", r.Name, file)
		}
		if got := str(u.ObjectValue()["permissions"]); got != perm {
			t.Errorf("%s: upload %s has permissions %q, want %q", r.Name, file, got, perm)
		}
		return
	}
	t.Errorf("%s uploads no %s", r.Name, file)
}
