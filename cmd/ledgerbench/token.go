package main

import (
	"context"

	"google.golang.org/grpc/metadata"
)

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}
