package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Why not docker.Image: pulumi-docker v4.10's Image keeps its previous inputs in a secret
// `__inputs` output and then diffs against an empty `build`, so every `pulumi up` shows the image
// as changed, rebuilds it, and every container that references it shows as unknown in previews
// (a permanent diff; `pulumi up --expect-no-changes` can never pass). The program therefore
// hashes the build context itself (honouring .dockerignore) and builds with a pulumi-command
// resource triggered by that hash and the build args; its output is the image id.

// ContextFiles lists the files of the Docker build context under root: every regular file and
// symlink that .dockerignore does not exclude, plus the Dockerfile and .dockerignore (which the
// builder always needs), as sorted slash-separated paths relative to root. It is the one
// definition of the context: ContextDigest hashes exactly these files and BuildCommand archives
// exactly these files, so the image is built from what the digest covers and nothing else (no
// Pulumi.<stack>.yaml, infra/, .git, local state).
func ContextFiles(root string) ([]string, error) {
	pats, err := readDockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		// The Dockerfile and .dockerignore are always sent to the builder.
		if rel != "Dockerfile" && rel != ".dockerignore" && dockerignored(rel, pats) {
			if d.IsDir() {
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
			t, _ := os.Readlink(p)
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

func readDockerignore(p string) ([]string, error) {
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pats []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue // negations are not used in this repository
		}
		l = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(l)), "/")
		pats = append(pats, l)
	}
	return pats, sc.Err()
}

// dockerignored reports whether rel (slash-separated) or one of its parent directories matches
// a pattern. Patterns match from the context root; a leading **/ matches at any depth.
func dockerignored(rel string, pats []string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range pats {
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		n := len(strings.Split(p, "/"))
		for start := 0; start+n <= len(parts); start++ {
			if start > 0 && !anyDepth {
				break
			}
			if ok, _ := filepath.Match(p, strings.Join(parts[start:start+n], "/")); ok {
				return true
			}
		}
	}
	return false
}
