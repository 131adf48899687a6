package main

import (
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// TestEveryRPCImplemented calls every method the API declares, with an
// empty request, on a running ledgerd: none may answer UNIMPLEMENTED (an
// empty request is refused as invalid, or answered).
func TestEveryRPCImplemented(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, []string{"--data-dir", t.TempDir()}, map[string]string{"LEDGER_AUTH": "none"})
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	n := 0
	for _, fd := range []protoreflect.FileDescriptor{pb.File_creditledger_v1_ledger_proto, pb.File_creditledger_v1_settings_proto, pb.File_creditledger_v1_events_proto} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				method := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
				err := conn.Invoke(testCtx(t), method, dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output()))
				if c := status.Code(err); c == codes.Unimplemented || c == codes.Unknown || c == codes.Internal {
					t.Errorf("%s: %v", method, err)
				}
				n++
			}
		}
	}
	if n != 37 {
		t.Errorf("called %d methods, the API declares 37 (22 CreditLedger, 10 CreditSettings, 5 CreditWebhooks)", n)
	}
}
