package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantFailed bool
		want       []string // in the summary, in this order
		notWant    []string // not in the summary
	}{
		{
			name: "a failed subtest's lines repeated, not its parent's",
			in: `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Test":"TestA","Output":"parent log\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    x_test.go:3: the message\n"}
{"Action":"fail","Package":"p","Test":"TestA/sub"}
{"Action":"fail","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"fine\n"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p"}
`,
			wantFailed: true,
			want:       []string{"1 failed test(s)", "=== FAIL: p TestA/sub\n    x_test.go:3: the message\n"},
			notWant:    []string{"=== FAIL: p TestA\n", "fine"},
		},
		{
			name: "all passed: no summary",
			in: `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Test":"TestB","Output":"fine\n"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"pass","Package":"p"}
`,
		},
		{
			name: "a package without its result (killed by the timeout)",
			in: `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Test":"TestB","Output":"running\n"}
`,
			wantFailed: true,
			want:       []string{"p ended without a result"},
		},
		{
			name:       "a build failure",
			in:         `{"ImportPath":"p [p.test]","Action":"build-output","Output":"x.go:1: syntax error\n"}` + "\n" + `{"ImportPath":"p [p.test]","Action":"build-fail"}` + "\n",
			wantFailed: true,
			want:       []string{"x.go:1: syntax error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			failed, err := run(strings.NewReader(tt.in), &out)
			if err != nil {
				t.Fatal(err)
			}
			if failed != tt.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tt.wantFailed)
			}
			got := out.String()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			_, summary, _ := strings.Cut(got, "=== testlog:")
			for _, w := range tt.notWant {
				if strings.Contains(summary, w) {
					t.Errorf("summary holds %q:\n%s", w, summary)
				}
			}
			if !tt.wantFailed && strings.Contains(got, "testlog:") {
				t.Errorf("a summary without a failure:\n%s", got)
			}
		})
	}
}
