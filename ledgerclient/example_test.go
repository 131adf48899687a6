package ledgerclient_test

import (
	"context"
	"errors"
	"fmt"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/ledgerclient"
)

// A service credits a client after a confirmed card payment, then spends
// credits on an order. The address, CA file and token come from the
// service's configuration; here, from a ledger started for the example.
func Example() {
	ledgerd := startExampleLedger() // in a service: its configuration
	defer ledgerd.Stop()
	addr, caFile, serviceToken := ledgerd.Addr, ledgerd.CAFile, ledgerd.Token

	ctx := context.Background()
	// TLS that trusts the CA signing ledgerd's certificate; pass a client
	// certificate and key as well when ledgerd's gRPC port requires mTLS.
	tlsConfig, err := ledgerclient.TLSConfigFromFiles(caFile, "", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := ledgerclient.Dial(ctx, addr,
		ledgerclient.WithTLS(tlsConfig),
		ledgerclient.WithToken(serviceToken), // a service token with the ledger:write scope
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// The payment provider's id is the idempotency key: however often the
	// provider redelivers its webhook, the credits are posted once.
	credit := &pb.CreditRequest{
		Workspace: "acme", Account: "client-42", Amount: 100,
		Kind:           pb.TransactionKind_TRANSACTION_KIND_PURCHASE,
		Reference:      "stripe:pi_3Nq8",
		IdempotencyKey: "stripe:pi_3Nq8",
	}
	for range 2 {
		resp, err := c.Credit(ctx, credit)
		if err != nil {
			// Transient failures were already retried with the same key;
			// what is left is safe to retry later, with the same key.
			fmt.Println("credit failed:", err)
			return
		}
		fmt.Printf("balance %d, replayed %t\n", resp.GetBalance(), resp.GetReplayed())
	}

	// Spending more than the balance is refused, and nothing is posted.
	_, err = c.Debit(ctx, &pb.DebitRequest{
		Workspace: "acme", Account: "client-42", Amount: 250,
		Kind:           pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE,
		Reference:      "order:1042",
		IdempotencyKey: "order:1042:pay",
	})
	var le *ledgerclient.Error
	switch {
	case err == nil:
		fmt.Println("paid")
	case errors.Is(err, ledgerclient.ErrInsufficientCredits) && errors.As(err, &le):
		// Offer another payment method; the same key may be tried again
		// after a top-up.
		fmt.Printf("refused: %s (%s): balance %s, required %s\n",
			le.ErrorReason, le.Reason, le.Metadata["balance"], le.Metadata["required"])
	case ledgerclient.IsTransient(err):
		fmt.Println("outcome unknown: retry later with the same idempotency key")
	default:
		fmt.Println("refused:", err)
	}

	// Output:
	// balance 100, replayed false
	// balance 100, replayed true
	// refused: ERROR_REASON_INSUFFICIENT_CREDITS (INSUFFICIENT_CREDITS): balance 100, required 250
}
