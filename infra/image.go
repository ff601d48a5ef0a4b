package main

import (
	"bufio"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Why not docker.Image: pulumi-docker v4.10's Image keeps its previous inputs in a secret
// `__inputs` output and then diffs against an empty `build`, so every `pulumi up` shows the image
// as changed, rebuilds it, and every container that references it shows as unknown in previews
// (a permanent diff; `pulumi up --expect-no-changes` can never pass). The program therefore
// hashes the build context itself (ContextFiles) and builds with a pulumi-command
// resource triggered by that hash and the build args; its output is the image id.

// ContextFiles lists the files of the Docker build context under root: every regular file and
// symlink that root's .dockerignore admits, plus the Dockerfile (which the builder always
// needs), as sorted slash-separated paths relative to root. It is the one definition of the
// context: ContextDigest hashes exactly these files and the build archives exactly these files,
// so the image is built from what the digest covers and nothing else.
//
// The repository's .dockerignore is an allow-list (`*`, then `!go.mod`, `!service/`, ...), read
// with Docker's semantics (see dockerignore): an edit outside it, or an untracked file such as
// .env or a Pulumi.<stack>.yaml, changes neither the digest nor the image.
func ContextFiles(root string) ([]string, error) {
	ig, err := readDockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel != "Dockerfile" && ig.excludes(rel) {
			if d.IsDir() && !ig.mayReinclude(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// ContextDigest hashes the files of the Docker build context under root (ContextFiles):
// relative path, executable bit and content.
func ContextDigest(root string) (string, error) {
	files, err := ContextFiles(root)
	if err != nil {
		return "", err
	}
	return digestFiles(root, files)
}

func digestFiles(root string, files []string) (string, error) {
	h := sha256.New()
	for _, rel := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, st.Mode()&(fs.ModeSymlink|0o111))
		if st.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			io.WriteString(h, t)
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dockerignore is a parsed .dockerignore with the semantics of moby/patternmatcher (which the
// docker CLI and BuildKit use): patterns match slash-separated paths from the context root, a
// path is also matched by a pattern that matches one of its parent directories, `!` re-includes,
// and the last pattern that matches decides.
type dockerignore []ignorePattern

type ignorePattern struct {
	text   string // cleaned, without the '!'
	negate bool
	re     *regexp.Regexp
}

func readDockerignore(p string) (dockerignore, error) {
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ig, err := parseDockerignore(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return ig, nil
}

func parseDockerignore(r io.Reader) (dockerignore, error) {
	var ig dockerignore
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var p ignorePattern
		if l[0] == '!' {
			p.negate = true
			l = strings.TrimSpace(l[1:])
		}
		if l == "" {
			continue
		}
		l = path.Clean(filepath.ToSlash(l))
		if len(l) > 1 && l[0] == '/' {
			l = l[1:]
		}
		re, err := ignoreRegexp(l)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", l, err)
		}
		p.text, p.re = l, re
		ig = append(ig, p)
	}
	return ig, sc.Err()
}

// ignoreRegexp translates a pattern as moby/patternmatcher does: `*` is any run of characters
// but '/', `?` one such character, `**` any number of path segments (`**/` also none), `[...]`
// a class, `\` escapes the next character.
func ignoreRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			i++
			if i+1 < len(p) && p[i+1] == '/' {
				i++
			}
			if i+1 == len(p) {
				b.WriteString(".*")
			} else {
				b.WriteString("(.*/)?")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		case c == '[' || c == ']' || c == '-' || c == '^':
			b.WriteByte(c)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// excludes reports whether rel (slash-separated, relative to the context root) is left out.
func (ig dockerignore) excludes(rel string) bool {
	var parents []string
	if dir := path.Dir(rel); dir != "." {
		parents = strings.Split(dir, "/")
	}
	excluded := false
	for _, p := range ig {
		match := p.re.MatchString(rel)
		for i := 0; !match && i < len(parents); i++ {
			match = p.re.MatchString(strings.Join(parents[:i+1], "/"))
		}
		if match {
			excluded = !p.negate
		}
	}
	return excluded
}

// mayReinclude reports whether a negation could re-include something below the excluded
// directory dir, so the walk must enter it (moby's rule: a `!` pattern that starts with dir/).
func (ig dockerignore) mayReinclude(dir string) bool {
	for _, p := range ig {
		if p.negate && strings.HasPrefix(p.text+"/", dir+"/") {
			return true
		}
	}
	return false
}

// BuildContext is the image build context of the repository: its root relative to the working
// directory (so the state does not depend on where the repository is checked out), the files
// and their digest.
type BuildContext struct {
	Dir    string
	Files  []string
	Digest string
}

// LoadBuildContext lists and hashes the build context of the repository the program runs in.
func LoadBuildContext() (BuildContext, error) {
	root, err := repoRoot()
	if err != nil {
		return BuildContext{}, err
	}
	files, err := ContextFiles(root)
	if err != nil {
		return BuildContext{}, fmt.Errorf("listing the build context %s: %w", root, err)
	}
	digest, err := digestFiles(root, files)
	if err != nil {
		return BuildContext{}, fmt.Errorf("hashing the build context %s: %w", root, err)
	}
	dir := root
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, root); err == nil {
			dir = rel
		}
	}
	return BuildContext{Dir: dir, Files: files, Digest: digest}, nil
}

//go:embed scripts/build-image.sh
var buildImageScript string

// ImageRef is the tag of the service image: imageName:appVersion, under the image registry
// (pushRegistry or the stack's own) if there is one.
func (c *Config) ImageRef() string {
	ref := c.ImageName + ":" + c.AppVersion
	if reg := c.ImageRegistry(); reg != "" {
		ref = strings.TrimSuffix(reg, "/") + "/" + ref
	}
	return ref
}

// buildCommand is the command line of the build phase: a gzip'ed tar of exactly files (run in
// the repository root) piped into scripts/build-image.sh on the stack's Docker host, which
// builds ref with the legacy builder, optionally pushes it (with the docker CLI's credentials
// from `docker login`), and prints the image id last. (For an archive the daemon does not apply
// .dockerignore; so the archive itself must leave out everything else.)
func buildCommand(on OnHost, files []string, ref, goImage, appVersion string, push bool) (string, pulumi.StringMap) {
	return on.Piped(contextArchiveCommand(files), "sh", "-c", buildImageScript, "sh", ref, goImage, appVersion, strconv.FormatBool(push))
}

// contextArchiveCommand writes a gzip'ed tar of files (relative to the working directory) to
// stdout. The names are given as ./path after --, so none can be taken for a tar option, and
// --no-recursion keeps tar to the list.
func contextArchiveCommand(files []string) string {
	args := []string{"tar", "-czf", "-", "--no-recursion", "--"}
	for _, f := range files {
		args = append(args, "./"+f)
	}
	return shellJoin(args)
}

// parseImageID returns the image id printed last by the build.
func parseImageID(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		return "", fmt.Errorf("phase build: the build printed %q, not an image id", id)
	}
	return id, nil
}
