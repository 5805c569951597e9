package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// servedRoutes finds every route pattern ("GET /api/v1/users") registered
// in this package's sources, with where it is.
func servedRoutes(t *testing.T) map[string]string {
	t.Helper()
	pattern := regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE) (/api/\S+)$`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	routes := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "doc.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && pattern.MatchString(s) {
				routes[s] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	return routes
}

// documentedRoutes reads the Routes table of docs/rest-api.md: rows
// "| GET, PUT | `/api/v1/x/{id}[?query]` | …".
func documentedRoutes(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile("../../docs/rest-api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## Routes\n")
	if !ok {
		t.Fatal("docs/rest-api.md has no \"## Routes\" section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("^\\| *([A-Z, ]+?) *\\| *`(/api/[^`]+)`")
	routes := map[string]int{}
	for i, line := range strings.Split(table, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path, _, _ := strings.Cut(m[2], "[") // `/api/v1/users[?kind=…]`
		for _, method := range strings.Split(m[1], ",") {
			routes[strings.TrimSpace(method)+" "+path] = i + 1
		}
	}
	return routes
}

// TestRoutesDocumented: every route the API serves is in the Routes table
// of docs/rest-api.md, and every route there is served. Whoever adds,
// renames or removes a route must update the docs.
func TestRoutesDocumented(t *testing.T) {
	served := servedRoutes(t)
	documented := documentedRoutes(t)
	if len(served) < 40 {
		t.Fatalf("found only %d routes in the sources; the scan is broken: %v", len(served), served)
	}
	for r, at := range served {
		if _, ok := documented[r]; !ok {
			t.Errorf("route %q (%s) is served but not in docs/rest-api.md's Routes table: add a row for it", r, at)
		}
	}
	for r := range documented {
		if _, ok := served[r]; !ok {
			t.Errorf("docs/rest-api.md's Routes table lists %q, which no source of internal/api serves: remove or fix the row", r)
		}
	}
}
