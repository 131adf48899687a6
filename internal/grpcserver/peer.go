package grpcserver

import (
	"context"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// PeerServiceIdentity returns the service identity of the caller's
// verified client certificate (mTLS): its first URI SAN (e.g.
// spiffe://example.org/checkout) when it has one, else its subject common
// name. ok is false when the connection is not TLS, or the client sent no
// certificate, or the certificate was not verified against the configured
// client CAs.
//
// Calls relayed by ledgerd's own REST gateway carry the gateway's
// identity, not the REST caller's: those calls are authorized by their
// bearer token, and the gateway's identity must not grant privileges of
// its own.
func PeerServiceIdentity(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := info.State.VerifiedChains[0][0]
	for _, u := range leaf.URIs {
		if s := u.String(); s != "" {
			return s, true
		}
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		return cn, true
	}
	return "", false
}
