package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The build context of the real repository is exactly what the binary needs: go.mod, go.sum,
// the Dockerfile and the non-test files under service/ and migrations/. The expected list is
// computed here by walking the tree, independently of the dockerignore code.
func TestContextFilesOfRepository(t *testing.T) {
	files, err := ContextFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Dockerfile", "go.mod", "go.sum"}
	for _, dir := range []string{"service", "migrations"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			rel, err := filepath.Rel("..", p)
			if err != nil {
				return err
			}
			want = append(want, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(want)
	if !slices.Equal(files, want) {
		t.Errorf("ContextFiles(repository) =\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Contains(files, "service/main.go") || !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "migrations/") }) {
		t.Error("the context lacks the service or the migrations")
	}
}

// copyTree copies the files under src that a test of the context needs (the context itself and
// some of what lies outside it) to dst.
func copyTree(t *testing.T, src, dst string, paths ...string) {
	t.Helper()
	for _, top := range paths {
		err := filepath.WalkDir(filepath.Join(src, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out := filepath.Join(dst, rel)
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Editing anything outside the allow-list (nginx/, infra/, docs, tests, untracked secrets) leaves
// the digest, and so the image and the replicas, unchanged; editing the service changes it.
func TestContextDigestOnlyFollowsTheService(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "..", root, ".dockerignore", "Dockerfile", "go.mod", "go.sum", "service", "migrations",
		"nginx/render.go", "infra/main.go", "docs/infra.md", "README.md", "Pulumi.yaml")
	base, err := ContextDigest(root)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, rel, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, file string
		changes    bool
	}{
		{"nginx package", "nginx/render.go", false},
		{"new file in nginx", "nginx/templates/x.tmpl", false},
		{"infra program", "infra/main.go", false},
		{"docs", "docs/infra.md", false},
		{"README", "README.md", false},
		{"a service test", "service/main_test.go", false},
		{"a test deep in service", "service/internal/notes/x_test.go", false},
		{"service testdata", "service/internal/notes/testdata/fixture.json", false},
		{"untracked .env", ".env", false},
		{"untracked stack file", "Pulumi.other.yaml", false},
		{"untracked key", "deploy_ed25519", false},
		{"local state", ".pulumi-state/stack.json", false},
		{"service code", "service/main.go", true},
		{"new service file", "service/internal/notes/extra.go", true},
		{"migration", "migrations/99999_x.sql", true},
		{"go.mod", "go.mod", true},
		{"Dockerfile", "Dockerfile", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(root, filepath.FromSlash(tc.file))
			old, err := os.ReadFile(p)
			existed := err == nil
			edit(t, tc.file, string(old)+"\n// edited by the test\n")
			t.Cleanup(func() {
				if existed {
					edit(t, tc.file, string(old))
				} else if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			})
			got, err := ContextDigest(root)
			if err != nil {
				t.Fatal(err)
			}
			if changed := got != base; changed != tc.changes {
				t.Errorf("editing %s: digest changed = %v, want %v", tc.file, changed, tc.changes)
			}
		})
	}
}

func TestDockerignoreSemantics(t *testing.T) {
	ig, err := parseDockerignore(strings.NewReader(strings.Join([]string{
		"# allow-list", "*", "!go.mod", "!/service/", "!docs/keep.md", "**/*_test.go", "**/testdata",
		"service/secret?.txt", "!service/secret1.txt", "service/[ab].go",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"go.mod": false, "go.sum": true, "README.md": true, ".git/HEAD": true,
		"service": false, "service/main.go": false, "service/x/y/z.go": false,
		"service/main_test.go": true, "service/x/testdata/f": true, "main_test.go": true,
		"service/secret2.txt": true, "service/secret1.txt": false, "service/secretxx.txt": false,
		"service/a.go": true, "service/c.go": false,
		"docs": true, "docs/keep.md": false, "docs/other.md": true,
		"nginx/render.go": true, "infra/main.go": true,
	} {
		if got := ig.excludes(path); got != want {
			t.Errorf("excludes(%q) = %v, want %v", path, got, want)
		}
	}
	// The walk must enter docs/ (a negation below it) but may skip nginx/.
	if !ig.mayReinclude("docs") || ig.mayReinclude("nginx") {
		t.Errorf("mayReinclude(docs, nginx) = %v, %v; want true, false", ig.mayReinclude("docs"), ig.mayReinclude("nginx"))
	}
}

func TestContextDigestStable(t *testing.T) {
	a, err := ContextDigest("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ContextDigest("..")
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(a) != 64 {
		t.Errorf("digest not stable: %s %s", a, b)
	}
}

func TestBuildCommand(t *testing.T) {
	files := []string{"Dockerfile", "go.mod"}
	cmd, env := buildCommand(NewOnHost(mustDockerHost(t, "unix:///var/run/docker.sock"), nil), files, "notes-service:1.2.3", "golang:1.26", "1.2.3", false)
	for _, s := range []string{"tar -czf - --no-recursion -- ./Dockerfile ./go.mod | sh -c ", "phase build:", " sh notes-service:1.2.3 golang:1.26 1.2.3 false"} {
		if !strings.Contains(cmd, s) {
			t.Errorf("build command lacks %q: %s", s, cmd)
		}
	}
	if _, ok := env["DOCKER_HOST"]; !ok {
		t.Error("no DOCKER_HOST for a unix host")
	}
	on := NewOnHost(mustDockerHost(t, "ssh://deploy@h.example.com:2222"), []string{"-i", "/k ey"})
	cmd, _ = buildCommand(on, files, "r/notes-service:1", "golang:1.26", "1", true)
	if !strings.HasPrefix(cmd, "tar ") || !strings.Contains(cmd, " | ssh -o BatchMode=yes -i '/k ey' -l deploy -p 2222 -- h.example.com ") {
		t.Errorf("ssh build command = %s", cmd)
	}
	if id, err := parseImageID("noise\nsha256:" + strings.Repeat("0", 64) + "\n"); err != nil || !strings.HasPrefix(id, "sha256:") {
		t.Errorf("parseImageID = %q, %v", id, err)
	}
	if _, err := parseImageID("Step 3/4 failed"); err == nil || !strings.Contains(err.Error(), "phase build") {
		t.Errorf("parseImageID(garbage) = %v, want a phase build error", err)
	}
}

// The archive the build streams holds exactly ContextFiles, on every host type.
func TestBuildCommandArchivesContextFiles(t *testing.T) {
	files, err := ContextFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	archive := contextArchiveCommand(files)
	for _, dh := range []string{"unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "ssh://deploy@h.example.com"} {
		cmd, _ := buildCommand(NewOnHost(mustDockerHost(t, dh), nil), files, "notes-service:1", "golang:1.26", "1", false)
		if !strings.HasPrefix(cmd, archive+" | ") {
			t.Errorf("%s: build command does not pipe the ContextFiles archive: %.300s", dh, cmd)
		}
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	// Run the archive command in the repository root and read the archive back.
	c := exec.Command("sh", "-c", archive)
	c.Dir = ".."
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(out)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var got []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimPrefix(hdr.Name, "./"))
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if !slices.Equal(got, files) {
		t.Errorf("archive entries differ from ContextFiles:\n%v\n%v", got, files)
	}
}

func TestContextArchiveNamesAreNotOptions(t *testing.T) {
	cmd := contextArchiveCommand([]string{"-rf", "--to-command=x", "a b"})
	for _, s := range []string{" -- ", "./-rf", "./--to-command=x", "'./a b'"} {
		if !strings.Contains(cmd, s) {
			t.Errorf("archive command lacks %q: %s", s, cmd)
		}
	}
}
