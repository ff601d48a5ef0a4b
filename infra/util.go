package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func sha256Hex(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashFiles hashes a path → content map deterministically.
func hashFiles(files map[string][]byte) string {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts [][]byte
	for _, k := range keys {
		parts = append(parts, []byte(k), files[k])
	}
	return sha256Hex(parts...)
}

// tarGzBase64 packs files (path → content, mode 0644 unless the path is in modes) into a
// deterministic gzip'ed tar, base64-encoded so it travels as a command's stdin string.
func tarGzBase64(files map[string][]byte, modes map[string]int64) (string, error) {
	return tarGz(files, func(name string) (int64, int) {
		if m, ok := modes[name]; ok {
			return m, 0
		}
		return 0o644, 0
	})
}

// secretTarBase64 packs secret files like tarGzBase64, each mode 0400 and owned by uid:uid, for
// `docker cp -a -` (which keeps the archive's owners), so only that user can read them.
func secretTarBase64(files map[string][]byte, uid int) (string, error) {
	return tarGz(files, func(string) (int64, int) { return 0o400, uid })
}

func tarGz(files map[string][]byte, meta func(name string) (mode int64, uid int)) (string, error) {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	for _, k := range keys {
		mode, uid := meta(k)
		hdr := &tar.Header{Name: k, Mode: mode, Uid: uid, Gid: uid, Size: int64(len(files[k])), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(files[k]); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// repoRoot finds the directory holding the Dockerfile and go.mod: Pulumi runs the program with
// the working directory set to `main` (infra/), tests run in infra/ too, but be robust.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "Dockerfile")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Dockerfile and go.mod in %s or its parents", dir)
		}
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
