package grpcserver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// domainReasons reads every machine reason the domain package declares
// from its source: each Reason… constant and each Reason field set to a
// literal, so that a reason added to internal/ledger without an
// ErrorReason fails TestReasonsCoverTheDomain rather than reaching callers
// undeclared.
func domainReasons(t *testing.T) []string {
	t.Helper()
	const dir = "../ledger"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	seen := map[string]bool{}
	literal := func(e ast.Expr) {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				seen[s] = true
			}
		}
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if strings.HasPrefix(name.Name, "Reason") && i < len(n.Values) {
						literal(n.Values[i])
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
					literal(n.Value)
				}
			}
			return true
		})
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	if len(out) < 20 {
		t.Fatalf("found only %d domain reasons (%v): the source scan is broken", len(out), out)
	}
	return out
}

func TestReasonsCoverTheDomain(t *testing.T) {
	t.Parallel()
	for _, reason := range domainReasons(t) {
		t.Run(reason, func(t *testing.T) {
			t.Parallel()
			r := toProtoReason(reason)
			if r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
				t.Fatalf("domain reason %q has no ErrorReason: add ERROR_REASON_%s to proto/creditledger/v1/errors.proto and to reasons", reason, reason)
			}
			// Back to the wire: the string callers always received.
			if got := WireReason(r); got != reason {
				t.Errorf("WireReason(%v) = %q, want %q", r, got, reason)
			}
			if got := errorInfoReason(reason); got != reason {
				t.Errorf("ErrorInfo.reason for %q = %q", reason, got)
			}
		})
	}
}

func TestEveryErrorReasonIsSent(t *testing.T) {
	t.Parallel()
	sent := map[pb.ErrorReason]string{}
	for reason, r := range reasons {
		if prev, dup := sent[r]; dup {
			t.Errorf("%v stands for both %q and %q", r, prev, reason)
		}
		sent[r] = reason
	}
	for v, name := range pb.ErrorReason_name {
		r := pb.ErrorReason(v)
		if r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
			if WireReason(r) != "" {
				t.Errorf("UNSPECIFIED goes on the wire as %q", WireReason(r))
			}
			continue
		}
		reason, ok := sent[r]
		if !ok {
			t.Errorf("%s is declared but reasons maps no error to it", name)
			continue
		}
		if "ERROR_REASON_"+reason != name {
			t.Errorf("%s is sent as %q: the wire name must be the value's name without its prefix", name, reason)
		}
	}
}

func TestUndeclaredReasonIsSentAsIs(t *testing.T) {
	t.Parallel()
	if got := errorInfoReason("SOMETHING_NEW"); got != "SOMETHING_NEW" {
		t.Errorf("errorInfoReason = %q", got)
	}
}
