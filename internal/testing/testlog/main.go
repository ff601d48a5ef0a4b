// Command testlog prints `go test -json` as the plain -v text it carries, then, when a test
// failed, the last lines of each failed test's own output once more at the end.
//
// The end-to-end suites run many tests in parallel for half an hour; their -v output
// interleaves thousands of lines, and a CI log keeps only its tail. The repeated lines put
// each failure's message where a reader of that tail finds it.
//
//	go test -json -v ./infra/e2e | go run ./internal/testing/testlog
//
// It exits 1 when a test, a package or a build failed, or when the input ended before a
// package reported its result.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// tailLines is how many of a failed test's last lines are repeated; maxFailures bounds how
// many failed tests are, so that the summary stays inside a log's tail.
const (
	tailLines   = 40
	maxFailures = 6
)

// event is the part of a test2json event that is read (cmd/test2json documents the format).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	failed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testlog:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

type key struct{ pkg, test string }

// run copies the output in from in to out and appends the summary. It reports whether anything
// failed.
func run(in io.Reader, out io.Writer) (failed bool, err error) {
	var (
		output  = map[key][]string{}
		order   []key               // failed tests, in the order they ended
		started = map[string]bool{} // packages without their result yet
		w       = bufio.NewWriter(out)
	)
	defer w.Flush()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// go test prints some things (a failed build of a test binary, for one) as text.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		switch e.Action {
		case "output", "build-output":
			w.WriteString(e.Output)
			if e.Test != "" {
				k := key{e.Package, e.Test}
				output[k] = append(output[k], e.Output)
				if n := len(output[k]); n > 4*tailLines {
					output[k] = slices.Clone(output[k][n-tailLines:])
				}
			}
		case "start":
			started[e.Package] = true
		case "fail", "build-fail":
			failed = true
			if e.Test != "" {
				order = append(order, key{e.Package, e.Test})
			} else {
				delete(started, e.Package)
			}
		case "pass", "skip":
			if e.Test == "" {
				delete(started, e.Package)
			}
			delete(output, key{e.Package, e.Test})
		}
		w.Flush()
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("reading go test -json: %w", err)
	}
	for pkg := range started {
		fmt.Fprintf(w, "testlog: %s ended without a result (timeout or crash: see above)\n", pkg)
		failed = true
	}
	summarize(w, leaves(order), output)
	return failed, nil
}

// leaves drops the failed tests whose subtests failed too: a parent fails because a child did,
// and the child's lines hold the message.
func leaves(failed []key) []key {
	var out []key
	for _, k := range failed {
		parent := slices.ContainsFunc(failed, func(o key) bool {
			return o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/")
		})
		if !parent {
			out = append(out, k)
		}
	}
	return out
}

func summarize(w io.Writer, failed []key, output map[key][]string) {
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(w, "\n=== testlog: %d failed test(s); the last lines of each\n", len(failed))
	for i, k := range failed {
		if i == maxFailures {
			fmt.Fprintf(w, "=== and %d more (see above)\n", len(failed)-i)
			break
		}
		lines := output[k]
		if len(lines) > tailLines {
			lines = lines[len(lines)-tailLines:]
		}
		fmt.Fprintf(w, "=== FAIL: %s %s\n%s", k.pkg, k.test, strings.Join(lines, ""))
	}
}
