package postgres

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/notes-stack/notes/service/internal/notes"
)

// TestBenchSQLMatches checks that bench/ (which cannot import this package)
// runs through pgbench the statements this package runs, with the values
// the benchmark substitutes for the parameters.
func TestBenchSQLMatches(t *testing.T) {
	path := filepath.Join("..", "..", "..", "bench", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse the benchmark: %v", err)
	}
	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if i >= len(vs.Values) {
				break
			}
			if s, ok := stringValue(vs.Values[i]); ok {
				consts[name.Name] = s
			}
		}
		return true
	})
	tests := []struct{ name, want string }{
		// The list handler asks for the default limit plus one.
		{"listQuery", strings.Replace(listQuery, "$1", strconv.Itoa(notes.DefaultLimit+1), 1) + ";\n"},
		// POST /api/notes without an Idempotency-Key.
		{"insertQuery", strings.NewReplacer("$1", "'bench note'", "$2", "'written by pgbench'", "$3", "NULL").Replace(insertQuery) + ";\n"},
	}
	for _, tc := range tests {
		got, ok := consts[tc.name]
		if !ok {
			t.Errorf("%s: no string constant %s", path, tc.name)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: %s = %q\nthe service runs          %q", path, tc.name, got, tc.want)
		}
	}
}

// stringValue evaluates a string literal or a concatenation of them.
func stringValue(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		x, okx := stringValue(e.X)
		y, oky := stringValue(e.Y)
		return x + y, okx && oky && e.Op == token.ADD
	case *ast.ParenExpr:
		return stringValue(e.X)
	}
	return "", false
}
