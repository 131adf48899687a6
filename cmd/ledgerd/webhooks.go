package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/delivery"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/webhook"
)

// startWebhooks runs this replica's webhook delivery worker until stop is
// called; it does nothing when the store keeps no endpoints or the worker
// is turned off.
func startWebhooks(svc *ledger.Service, store ledger.Store, cfg config.Webhooks, obs delivery.Observer, log *zap.Logger) (stop func()) {
	ws, ok := store.(ledger.WebhookStore)
	if !cfg.Enabled || !ok {
		if cfg.Enabled {
			log.Warn("webhook deliveries: this store keeps no webhook endpoints")
		}
		return func() {}
	}
	if cfg.AllowPrivate {
		log.Warn("LEDGER_WEBHOOK_ALLOW_PRIVATE is on: webhook endpoints may use http and reach loopback and private " +
			"addresses of this network. Development only.")
	}
	w := delivery.New(delivery.Options{
		Service: svc, Store: ws, Client: webhook.NewClient(webhook.ClientOptions{AllowPrivate: cfg.AllowPrivate, Timeout: cfg.Timeout}),
		Owner: workerName(), Interval: cfg.Interval, Lease: cfg.Lease, RetryBase: cfg.RetryBase, Log: log.With(zap.String("component", "webhooks")), Observer: obs,
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// workerName names this process in leases: host, pid and a random part
// (a restarted process on the same host and pid is another worker).
func workerName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
