package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/grpcserver"
)

// Strict integers. protojson reads an integer field from a JSON number or
// string and accepts an exponent or a zero fraction ("1e3", 1000.0, "1E3"
// all become 1000). For amounts of money that is an ambiguity a payments
// API does not accept: the REST door refuses anything but a plain decimal
// integer, quoted or not, in every integer field of a request body, before
// protojson sees it.

// strictInteger is the only integer syntax accepted: an optional minus and
// decimal digits, without leading zeros.
var strictInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// integerDescription is the field violation's description.
const integerDescription = `must be a decimal integer: digits only, no exponent, fraction or leading zeros (e.g. "1000")`

// bodyRoute is the message a route's body decodes into.
type bodyRoute struct {
	msg    protoreflect.MessageDescriptor
	prefix string // field path of the body within the request ("" for body "*")
}

// bodyRoutes maps "METHOD /path/{var}:verb" to the body of every REST
// route of our services, read from their google.api.http annotations, so
// that a route added to the protos is covered without a list kept here.
func bodyRoutes() map[string]bodyRoute {
	routes := map[string]bodyRoute{}
	for _, fd := range []protoreflect.FileDescriptor{pb.File_creditledger_v1_ledger_proto, pb.File_creditledger_v1_settings_proto} {
		svcs := fd.Services()
		for i := range svcs.Len() {
			methods := svcs.Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					verb, path := ruleRoute(r)
					if path == "" || r.GetBody() == "" {
						continue
					}
					br := bodyRoute{msg: m.Input()}
					if r.GetBody() != "*" {
						f := m.Input().Fields().ByName(protoreflect.Name(r.GetBody()))
						if f == nil || f.Message() == nil {
							continue
						}
						br = bodyRoute{msg: f.Message(), prefix: r.GetBody() + "."}
					}
					routes[verb+" "+normalizePath(path)] = br
				}
			}
		}
	}
	return routes
}

func ruleRoute(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

var pathVariable = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// normalizePath writes "{workspace=*}" (runtime.Pattern.String) and
// "{workspace}" (the annotation) alike.
func normalizePath(p string) string { return pathVariable.ReplaceAllString(p, "{$1}") }

// strictIntegers is a grpc-gateway middleware: it runs after the route is
// matched (so the route's body message is known) and before the body is
// decoded. The body was already read and bounded by api.
func strictIntegers(routes map[string]bodyRoute) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
			pat, ok := runtime.HTTPPattern(r.Context())
			route, known := routes[r.Method+" "+normalizePath(pat.String())]
			if !ok || !known || r.Body == nil {
				next(w, r, pathParams)
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "the request body could not be read"))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if vs := integerViolations(body, route.msg, route.prefix); len(vs) > 0 {
				writeStatus(w, http.StatusBadRequest, invalidFields(vs))
				return
			}
			next(w, r, pathParams)
		}
	}
}

// integerViolations returns the paths of the integer fields of md in the
// JSON body that are not plain decimal integers. A body that is not JSON,
// or a field that is unknown or of the wrong JSON type, is left to
// protojson, which refuses it with its own message.
func integerViolations(body []byte, md protoreflect.MessageDescriptor, prefix string) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	var out []string
	walkMessage(v, md, prefix, &out)
	sort.Strings(out)
	return out
}

func walkMessage(v any, md protoreflect.MessageDescriptor, path string, out *[]string) {
	if isIntegerWrapper(md) {
		checkInteger(v, strings.TrimSuffix(path, "."), out)
		return
	}
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return // other well-known types have their own JSON forms
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	fields := md.Fields()
	for key, val := range obj {
		f := fields.ByJSONName(key)
		if f == nil {
			f = fields.ByName(protoreflect.Name(key))
		}
		if f == nil || val == nil {
			continue
		}
		p := path + string(f.Name())
		switch {
		case f.IsMap():
			if m, ok := val.(map[string]any); ok {
				for k, mv := range m {
					walkValue(mv, f.MapValue(), p+"["+strconv.Quote(k)+"]", out)
				}
			}
		case f.IsList():
			if l, ok := val.([]any); ok {
				for i, lv := range l {
					walkValue(lv, f, fmt.Sprintf("%s[%d]", p, i), out)
				}
			}
		default:
			walkValue(val, f, p, out)
		}
	}
}

func walkValue(v any, f protoreflect.FieldDescriptor, path string, out *[]string) {
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		checkInteger(v, path, out)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walkMessage(v, f.Message(), path+".", out)
	default:
	}
}

func checkInteger(v any, path string, out *[]string) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return
	}
	if !strictInteger.MatchString(s) {
		*out = append(*out, path)
	}
}

func isIntegerWrapper(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value":
		return true
	}
	return false
}

// invalidFields is the INVALID_ARGUMENT status of the domain's validation
// errors: ErrorInfo INVALID_ARGUMENT and one field violation per path.
func invalidFields(paths []string) *status.Status {
	msgs := make([]string, 0, len(paths))
	br := &errdetails.BadRequest{}
	for _, p := range paths {
		msgs = append(msgs, p+": "+integerDescription)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: p, Description: integerDescription})
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(msgs, "; "))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: grpcserver.ErrorDomain, Reason: grpcserver.WireReason(pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT)}, br); err == nil {
		st = d
	}
	return st
}
