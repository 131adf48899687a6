package ledgerclient

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
)

// interceptStream gives streaming calls (ExportTransactions, WatchEvents)
// the typed errors of unary ones, both when the stream opens and on every
// receive but the clean end (io.EOF). It adds no deadline and no retry: a
// stream lives as long as its caller wants it, and only the caller knows
// where to resume it (WatchEvents: after the last sequence received).
func (c *Client) interceptStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption,
) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, fromError(err, ctx.Err())
	}
	return &typedStream{ClientStream: s, ctx: ctx}, nil
}

type typedStream struct {
	grpc.ClientStream
	ctx context.Context
}

func (s *typedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return fromError(err, s.ctx.Err())
}
