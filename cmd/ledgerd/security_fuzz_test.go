package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// hostileStrings go into every string field, metadata key and value, and
// path segment. Each is JSON text for a string: some are not valid JSON
// strings on purpose (raw control bytes, invalid UTF-8).
var hostileStrings = []string{
	`""`, `"\u0000"`, `"a\u0000b"`, "\"a\x00b\"", `"\u202e"`, `"evil\u202etxt.exe"`, `"\u2066x\u2069"`, `"\u0007\u001b[31m"`,
	`"\t\r\n"`, "\"\x01\x1f\x7f\"", `"\u0085"`, `"\ufeff"`, `"\ud800"`, `"\udfff\ud800"`, "\"\xff\xfe\"", "\"\xc0\xae\"",
	`"ünïcödé"`, `"𝔘𝔫𝔦"`, `"../../etc/passwd"`, `"%00"`, `"' OR 1=1 --"`, `"${jndi:ldap://x}"`,
	`"` + strings.Repeat("x", 64<<10) + `"`, `"` + strings.Repeat("é", 32<<10) + `"`, `"` + strings.Repeat(`\u0000`, 1000) + `"`,
}

// hostileValues go into every member, whatever its type.
var hostileValues = []string{
	`null`, `true`, `0`, `-1`, `1.5`, `1e3`, `"1e3"`, `-0`, `"-0"`, `"0x10"`, `" 1"`,
	`9223372036854775807`, `"9223372036854775807"`, `9223372036854775808`, `"9223372036854775808"`,
	`-9223372036854775808`, `"-9223372036854775808"`, `-9223372036854775809`, `1e400`, `"NaN"`, `"Infinity"`,
	`99999999999999999999999999999999`, `2147483648`, `-2147483649`, `[]`, `{}`, `[[[[[]]]]]`, `{"a":{"b":{"c":[1]}}}`,
	`"TRANSACTION_KIND_NOPE"`, `"transaction_kind_refund"`, `99`, `"*"`, `"1970-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`,
}

// hostileBodies replace a body whole.
func hostileBodies(valid string) []string {
	out := []string{
		"", " ", "null", "[]", "{", "}", `{"a":`, `"str"`, "0", "{}{}", "\x00", "\ufeff{}",
		`{"amount":"1","amount":"2"}`, `{"unknownField":1}`, `{"@type":"x"}`, `{/*c*/}`, "{\"a\":\"\x00\"}",
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000), strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
		`{"metadata":{` + strings.TrimSuffix(strings.Repeat(`"k":"v",`, 50), ",") + `}}`,
		`{"` + strings.Repeat("k", 64<<10) + `":1}`,
		`{"x":"` + strings.Repeat("y", 2<<20) + `"}`, // over the body limit
	}
	for _, cut := range []int{1, 2, len(valid) / 3, len(valid) / 2, len(valid) - 1} {
		if cut > 0 && cut < len(valid) {
			out = append(out, valid[:cut])
		}
	}
	if valid != "" {
		out = append(out, valid+valid, valid+"\x00", strings.Replace(valid, "{", "{\"metadata\":{\"a\":\"b\"},", 1))
	}
	return out
}

// hostileSegments replace one path variable, already escaped (or not).
var hostileSegments = []string{
	"%00", "a%00b", "%2F", "a%2Fb", "..", "%2E%2E", ".", "%2e", "a%20b", "%ff", "%C0%AE", "%E2%80%AE", "%u202e",
	"ünï", "%F0%9D%94%98", strings.Repeat("a", 300), strings.Repeat("%41", 5000), "-", "_", "a:b", "a;b", "*", "~",
}

// hostileQueries are query strings added to GET routes.
var hostileQueries = []string{
	"pageToken=garbage", "pageToken=" + url.QueryEscape("eyJ3IjoieCJ9.AAAA"), "pageToken=" + strings.Repeat("A", 64<<10),
	"pageToken=%00", "pageSize=-1", "pageSize=0", "pageSize=2147483648", "pageSize=abc", "pageSize=1e3", "pageSize=99999999999",
	"type=NOPE", "type=99", "kind=TRANSACTION_KIND_NOPE", "status=-1", "orderBy=evil", "orderBy=create_time%20desc%3B", "orderBy=%00",
	"account=%00", "account=" + strings.Repeat("a", 300), "account=..%2F", "startTime=yesterday", "startTime=0", "endTime=9999-99-99T00:00:00Z",
	"showInactive=maybe", "showHistory=2", "updateMask=nope", "updateMask=workspace", "updateMask=*", "updateMask=%00", "workspace=other",
	"pageSize=1&pageSize=2", "%zz=1", "a=%zz", "account=%ff", "orderBy=%C0%AE", "pageToken=%ff%fe",
}

// hostileMasks are update masks for the PATCH routes.
var hostileMasks = []string{"", "nope", "workspace", "update_time", "*", "id", "credit_payments_enabled,nope", "a.b.c", "%00", "CreditPaymentsEnabled"}

// fuzzRoute is one REST route with a valid request for a fixture.
type fuzzRoute struct {
	name, verb, path, body string
	vars                   map[string]string
	route                  restRoute
	// tokens to send: an admin (or the service where admins are refused)
	// and the account's client.
	tokens []string
}

func fuzzRoutes(tb testing.TB, fx *fixture) []fuzzRoute {
	tb.Helper()
	var out []fuzzRoute
	for _, md := range apiMethods() {
		name := shortName(md)
		row, ok := matrix[name]
		if !ok {
			tb.Fatalf("%s has no matrix row", name)
		}
		req := row.build(fx, "fuzz-"+string(md.Name()))
		verb, path, body := restRequest(tb, md, req)
		r := routeOf(tb, md)
		vars := map[string]string{}
		for _, v := range r.pathVars() {
			vars[v] = req.ProtoReflect().Get(req.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(v))).String()
		}
		boss := fx.tokens[pAdmin]
		if row.want[pAdmin] != A {
			boss = fx.tokens[pService]
		}
		out = append(out, fuzzRoute{
			name: name, verb: verb, path: path, body: body, vars: vars, route: r,
			tokens: []string{boss, fx.tokens[pClient]},
		})
	}
	return out
}

// checkReply reports a 5xx, or an error that is not the gateway's JSON
// status, as a problem: a short signature (to group alike failures) and
// the whole story. It returns "" when the reply is acceptable.
func checkReply(what string, r rawReply) (signature, problem string) {
	switch {
	case r.code >= 500:
		sig := fmt.Sprintf("HTTP %d %.200s", r.code, r.body)
		return sig, fmt.Sprintf("%s → HTTP %d %.300s", what, r.code, r.body)
	case r.code >= 200 && r.code < 300:
		if strings.HasPrefix(r.ct, "text/csv") {
			return "", "" // ExportTransactions' body is the CSV itself
		}
		if !json.Valid(r.body) {
			return fmt.Sprintf("HTTP %d non-JSON", r.code), fmt.Sprintf("%s → HTTP %d with a body that is not JSON: %.300q", what, r.code, r.body)
		}
		return "", ""
	}
	if _, err := statusShape(r); err != nil {
		return fmt.Sprintf("HTTP %d: %v", r.code, err), fmt.Sprintf("%s → HTTP %d %.300q: not the gateway's JSON status: %v", what, r.code, r.body, err)
	}
	return "", ""
}

// members lists the JSON members of a valid body, with nested objects'
// members as dotted paths ("price.currencyCode", "metadata.*").
func members(prefix string, m map[string]any, out *[]string) {
	for k, v := range m {
		*out = append(*out, prefix+k)
		if sub, ok := v.(map[string]any); ok {
			members(prefix+k+".", sub, out)
		}
	}
}

// withMember returns body (JSON object text) with the member at dotted
// path set to raw JSON text, which need not be valid.
func withMember(body, path, raw string) string {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		m = map[string]any{}
	}
	const hole = "\x00HOLE\x00"
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = hole
	buf, _ := json.Marshal(m)
	return strings.Replace(string(buf), `"\u0000HOLE\u0000"`, raw, 1)
}

// restCases are the deterministic hostile requests for one route.
func restCases(rt fuzzRoute) []struct{ verb, path, body string } {
	type c = struct{ verb, path, body string }
	var out []c
	if rt.body != "" || rt.verb != http.MethodGet {
		valid := rt.body
		if valid == "" {
			valid = "{}"
		}
		for _, b := range hostileBodies(valid) {
			out = append(out, c{rt.verb, rt.path, b})
		}
		var ms []string
		var m map[string]any
		_ = json.Unmarshal([]byte(valid), &m)
		members("", m, &ms)
		ms = append(ms, "metadata.k", "reference", "note", "reason", "displayName", "price.currencyCode", "price.nanos")
		sort.Strings(ms)
		for _, name := range ms {
			for _, v := range hostileStrings {
				out = append(out, c{rt.verb, rt.path, withMember(valid, name, v)})
			}
			for _, v := range hostileValues {
				out = append(out, c{rt.verb, rt.path, withMember(valid, name, v)})
			}
		}
		for _, v := range hostileStrings { // as a metadata key
			out = append(out, c{rt.verb, rt.path, strings.Replace(withMember(valid, "metadata", "{}"), `"metadata":{}`, `"metadata":{`+v+`:"v"}`, 1)})
		}
	}
	for _, q := range hostileQueries {
		sep := "?"
		if strings.Contains(rt.path, "?") {
			sep = "&"
		}
		out = append(out, c{rt.verb, rt.path + sep + q, rt.body})
	}
	if rt.verb == http.MethodPatch {
		for _, mask := range hostileMasks {
			out = append(out, c{rt.verb, rt.path + "?updateMask=" + url.QueryEscape(mask), rt.body})
		}
	}
	for _, verb := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if verb != rt.verb {
			out = append(out, c{verb, rt.path, rt.body})
		}
	}
	for v := range rt.vars {
		for _, seg := range hostileSegments {
			vars := map[string]string{}
			for k, val := range rt.vars {
				vars[k] = url.PathEscape(val)
			}
			vars[v] = seg
			out = append(out, c{rt.verb, rt.route.fill(vars, true), rt.body})
		}
	}
	return out
}

// TestSecurityRESTHostileInputs sends every hostile input to every REST
// route as an admin (the service where admins are refused) and as the
// account's client: never a 5xx, and every error the gateway's JSON status.
//
// KNOWN BUGS this test reports (the code needs fixing, not the test):
//   - invalid UTF-8 in a percent-escaped path segment or query value
//     (/v1/workspaces/%ff/settings, ?pageToken=%ff%fe) → HTTP 500
//     "grpc: error while marshaling: string field contains invalid UTF-8";
//     the gateway should answer 400 INVALID_ARGUMENT;
//   - a repeated query parameter with invalid UTF-8
//     (/creditRequests?account=alice&account=%ff) → HTTP 500 "failed to
//     marshal error message": the error's message echoes the bytes;
//   - a known path with the wrong verb (POST …/settings) → HTTP 501
//     UNIMPLEMENTED "Method Not Allowed" (grpc-gateway's default routing
//     error handler); it should be 405.
func TestSecurityRESTHostileInputs(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	fx := s.seed(t, "sec-fuzz")
	total := 0
	var mu sync.Mutex
	for _, rt := range fuzzRoutes(t, fx) {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			cases := restCases(rt)
			type seen struct {
				n       int
				example string
			}
			problems := map[string]*seen{}
			sent := 0
			for _, tok := range rt.tokens {
				for _, c := range cases {
					if _, err := url.ParseRequestURI(s.base + c.path); err != nil {
						continue // not a request an HTTP client can send
					}
					sent++
					r := s.do(t, c.verb, c.path, tok, "application/json", []byte(c.body))
					sig, problem := checkReply(fmt.Sprintf("%s %.200q body %.200q", c.verb, c.path, c.body), r)
					if sig == "" {
						continue
					}
					if problems[sig] == nil {
						problems[sig] = &seen{example: problem}
					}
					problems[sig].n++
				}
			}
			// One line per kind of failure, with its first example.
			for _, p := range problems {
				t.Errorf("%d hostile requests like this one:\n%s", p.n, p.example)
			}
			mu.Lock()
			total += sent
			mu.Unlock()
		})
	}
	t.Cleanup(func() { t.Logf("%d hostile REST requests", total) })
}

// FuzzRESTHostileInput fuzzes one REST call: the route (by index), which
// token, a path segment replacing one path variable, a query string and
// the body. The seed corpus in testdata/fuzz/FuzzRESTHostileInput holds
// the shapes that matter; `go test` runs the seeds.
func FuzzRESTHostileInput(f *testing.F) {
	s := startSecLedgerd(f, newSecKeys(f), "")
	var fx *fixture
	var routes []fuzzRoute
	var once sync.Once
	f.Add(uint8(0), false, "", "", []byte(`{"amount":"1","idempotencyKey":"f"}`))
	f.Fuzz(func(t *testing.T, route uint8, asClient bool, segment, query string, body []byte) {
		once.Do(func() {
			fx = s.seed(t, "sec-fuzzing")
			routes = fuzzRoutes(t, fx)
		})
		if fx == nil {
			t.Skip("fixture failed to seed")
		}
		rt := routes[int(route)%len(routes)]
		vars := map[string]string{}
		for k, v := range rt.vars {
			vars[k] = url.PathEscape(v)
		}
		if segment != "" {
			names := rt.route.pathVars()
			vars[names[len(segment)%len(names)]] = segment
		}
		path := rt.route.fill(vars, true)
		if query != "" {
			path += "?" + query
		}
		if strings.ContainsAny(path, " \x00\r\n#") || strings.Contains(path, "%%") {
			path = strings.NewReplacer(" ", "%20", "\x00", "%00", "\r", "%0D", "\n", "%0A", "#", "%23").Replace(path)
		}
		if _, err := url.ParseRequestURI(s.base + path); err != nil {
			return // not a request an HTTP client can send
		}
		tok := rt.tokens[0]
		if asClient {
			tok = rt.tokens[1]
		}
		r := s.do(t, rt.verb, path, tok, "application/json", body)
		if _, problem := checkReply(fmt.Sprintf("%s %.200q body %.200q", rt.verb, path, body), r); problem != "" {
			t.Error(problem)
		}
	})
}

// rawMessage is a request already encoded: it lets the gRPC test send
// bytes a generated message would refuse to marshal (invalid UTF-8).
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawMessage); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (rawCodec) Name() string                       { return "proto" }

// grpcHostile are the values put into every string field over gRPC.
var grpcHostile = []string{
	"", "\x00", "a\x00b", "\u202e", "evil\u202etxt", "\u2066x\u2069", "\x07\x1b[31m", "\t\r\n", "\x01\x1f\x7f", "\u0085", "\ufeff",
	"ünïcödé", "../../x", "' OR 1=1 --", strings.Repeat("x", 64<<10), strings.Repeat("é", 32<<10), strings.Repeat("\x00", 1000),
	strings.Repeat("y", 2<<20), // over the message limit
}

// stringFields lists the string fields of m, recursively, with a setter;
// map<string,string> fields get a key setter and a value setter.
func stringFields(m protoreflect.Message, prefix string) (names []string, set []func(string)) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && fd.MapValue().Kind() == protoreflect.StringKind:
			names = append(names, name+"[key]", name+"[value]")
			set = append(set,
				func(v string) {
					m.Mutable(fd).Map().Set(protoreflect.ValueOfString(v).MapKey(), protoreflect.ValueOfString("v"))
				},
				func(v string) {
					m.Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString(v))
				})
		case fd.IsList() || fd.IsMap():
		case fd.Kind() == protoreflect.StringKind:
			names = append(names, name)
			set = append(set, func(v string) { m.Set(fd, protoreflect.ValueOfString(v)) })
		case fd.Kind() == protoreflect.MessageKind && fd.ContainingOneof() == nil || fd.Kind() == protoreflect.MessageKind && m.Has(fd):
			if fd.Message().FullName() == "google.protobuf.Timestamp" || fd.Message().FullName() == "google.protobuf.FieldMask" {
				continue
			}
			n, s := stringFields(m.Mutable(fd).Message(), name+".")
			names, set = append(names, n...), append(set, s...)
		}
	}
	return names, set
}

// TestSecurityGRPCHostileStrings puts every hostile string into every
// string field (metadata keys and values included) of every RPC, and
// invalid UTF-8 into every top-level string field: never INTERNAL or
// UNKNOWN.
//
// KNOWN BUG this test reports: a request whose string field is not valid
// UTF-8 is refused by grpc-go's codec with INTERNAL ("grpc: failed to
// unmarshal the received message: string field contains invalid UTF-8");
// SPEC §11 wants INVALID_ARGUMENT for any malformed input.
func TestSecurityGRPCHostileStrings(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	fx := s.seed(t, "sec-grpcfuzz")
	bad := func(err error) bool {
		c := status.Code(err)
		return c == codes.Internal || c == codes.Unknown || c == codes.DataLoss
	}
	for _, md := range apiMethods() {
		name := shortName(md)
		row := matrix[name]
		tok := fx.tokens[pAdmin]
		if row.want[pAdmin] != A {
			tok = fx.tokens[pService]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			probe := row.build(fx, "g")
			names, _ := stringFields(probe.ProtoReflect(), "")
			for i, field := range names {
				for j, v := range grpcHostile {
					req := row.build(fx, fmt.Sprintf("g-%d-%d", i, j))
					_, set := stringFields(req.ProtoReflect(), "")
					set[i](v)
					if _, err := s.invoke(ctx, tok, md, req); bad(err) {
						t.Errorf("%s with %s = %.60q: %v", name, field, v, err)
					}
				}
			}
			// Invalid UTF-8, which a generated client refuses to send: the
			// valid request with each string field appended again.
			base, err := proto.Marshal(row.build(fx, "g-utf8"))
			if err != nil {
				t.Fatal(err)
			}
			utf8Fields := map[string]error{}
			fields := md.Input().Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
					continue
				}
				for _, v := range []string{"\xff\xfe", "a\xc0\xaeb", "\xed\xa0\x80"} {
					raw := protowire.AppendString(protowire.AppendTag(append([]byte(nil), base...), fd.Number(), protowire.BytesType), v)
					if err := s.invokeRaw(bearer(ctx, tok), md, rawMessage(raw)); bad(err) {
						utf8Fields[string(fd.Name())] = err
					}
				}
			}
			// One line for every field that fails alike.
			if len(utf8Fields) > 0 {
				var names []string
				var last error
				for n, err := range utf8Fields {
					names, last = append(names, n), err
				}
				sort.Strings(names)
				t.Errorf("%s with invalid UTF-8 (\\xff\\xfe, \\xc0\\xae, \\xed\\xa0\\x80) in %s: %v", name, strings.Join(names, ", "), last)
			}
		})
	}
}

// invokeRaw sends pre-encoded request bytes.
func (s *secLedgerd) invokeRaw(ctx context.Context, md protoreflect.MethodDescriptor, req rawMessage) error {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return err
	}
	method := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	if md.IsStreamingServer() {
		return invokeStream(ctx, s.conn, method, req, func() any { return mt.New().Interface() }, grpc.ForceCodec(rawCodec{}))
	}
	return s.conn.Invoke(ctx, method, req, mt.New().Interface(), grpc.ForceCodec(rawCodec{}))
}
