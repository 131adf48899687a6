package grpcserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestPeerServiceIdentity(t *testing.T) {
	t.Parallel()
	spiffe, _ := url.Parse("spiffe://creditledger.test/checkout")
	withURI := &x509.Certificate{Subject: pkix.Name{CommonName: "checkout-cn"}, URIs: []*url.URL{spiffe}}
	cnOnly := &x509.Certificate{Subject: pkix.Name{CommonName: "invoicing"}}
	tlsPeer := func(st tls.ConnectionState) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: st}})
	}
	tests := []struct {
		name   string
		ctx    context.Context
		want   string
		wantOK bool
	}{
		{name: "no peer", ctx: context.Background()},
		{name: "plaintext", ctx: peer.NewContext(context.Background(), &peer.Peer{})},
		{name: "tls without a client certificate", ctx: tlsPeer(tls.ConnectionState{})},
		{
			name: "certificate sent but not verified",
			ctx:  tlsPeer(tls.ConnectionState{PeerCertificates: []*x509.Certificate{withURI}}),
		},
		{
			name: "URI SAN wins", want: "spiffe://creditledger.test/checkout", wantOK: true,
			ctx: tlsPeer(tls.ConnectionState{PeerCertificates: []*x509.Certificate{withURI}, VerifiedChains: [][]*x509.Certificate{{withURI}}}),
		},
		{
			name: "common name", want: "invoicing", wantOK: true,
			ctx: tlsPeer(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cnOnly}, VerifiedChains: [][]*x509.Certificate{{cnOnly}}}),
		},
		{
			name: "no name at all",
			ctx:  tlsPeer(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := PeerServiceIdentity(tt.ctx)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("PeerServiceIdentity = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
