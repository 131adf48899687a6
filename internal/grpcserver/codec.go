package grpcserver

import (
	"context"
	"errors"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/creditledger/creditledger/internal/ledger"
)

// A request whose string field is not valid UTF-8 cannot be decoded, and
// grpc-go answers INTERNAL for any decoding error. That is the caller's
// mistake, not the server's: the codec below lets such a message through
// empty and marks it, and the first interceptor refuses it with
// INVALID_ARGUMENT before anything else looks at it.

// undecodable holds the messages the codec could not decode for invalid
// UTF-8, until the interceptor takes them out (within the same call).
var undecodable sync.Map // proto.Message → struct{}

// lenientCodec is grpc-go's proto codec with that one exception.
type lenientCodec struct{ encoding.CodecV2 }

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		return err
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	undecodable.Store(m, struct{}{})
	return nil
}

// codecOption installs lenientCodec for the server's requests.
func codecOption() (grpc.ServerOption, error) {
	base := encoding.GetCodecV2("proto")
	if base == nil {
		return nil, errors.New("grpcserver: no proto codec registered")
	}
	return grpc.ForceServerCodecV2(lenientCodec{base}), nil
}

// utf8Interceptor refuses the messages lenientCodec marked.
func utf8Interceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := checkUTF8(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// checkUTF8 is utf8Interceptor's work, for unary calls and streams.
func checkUTF8(req any) error {
	if m, ok := req.(proto.Message); ok {
		if _, bad := undecodable.LoadAndDelete(m); bad {
			return &ledger.Error{
				Code: ledger.CodeInvalid, Reason: ledger.ReasonInvalidArgument,
				Message: "a string field of the request is not valid UTF-8",
			}
		}
	}
	return nil
}
