package main

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/postgres"
	"github.com/creditledger/creditledger/internal/store/sqlite"
)

// openStore opens PostgreSQL when a database URL is configured, else the
// embedded store under the data directory, and says which one in the log.
// It also returns how the write path batches on that store: on PostgreSQL
// as many batches in flight as the pool has connections, two per
// workspace (one reads while the other commits); on the embedded store,
// whose single writer commits one batch at a time, one.
func openStore(ctx context.Context, cfg config.Config, log *zap.Logger) (ledger.Store, ledger.BatchOptions, error) {
	bo := ledger.BatchOptions{MaxOps: cfg.BatchMaxOps, PerWorkspace: cfg.BatchPerWorkspace}
	if cfg.DatabaseURL != "" {
		redacted := config.RedactURL(cfg.DatabaseURL)
		if cfg.MigrateOnStart {
			if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
				return nil, bo, fmt.Errorf("migrate PostgreSQL at %s: %w", redacted, err)
			}
			log.Info("migrations applied", zap.String("store", "postgres"), zap.String("database_url", redacted))
		}
		s, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{MaxConns: int32(cfg.DBMaxConns)}) //nolint:gosec // G115: validated non-negative, a pool size
		if err != nil {
			return nil, bo, fmt.Errorf("open PostgreSQL at %s: %w", redacted, err)
		}
		bo.MaxInFlight = int(s.Pool().Config().MaxConns)
		log.Info("store opened", zap.String("store", "postgres"), zap.String("database_url", redacted),
			zap.Int("max_batches_in_flight", bo.MaxInFlight))
		return s, bo, nil
	}
	path, err := embeddedPath(cfg)
	if err != nil {
		return nil, bo, err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, bo, fmt.Errorf("open the embedded store at %s: %w", path, err)
	}
	bo.MaxInFlight = 1
	if bo.PerWorkspace == 0 {
		bo.PerWorkspace = 1
	}
	log.Info("store opened", zap.String("store", "embedded"), zap.String("path", path))
	return s, bo, nil
}

// embeddedPath creates the data directory (owner only) and names the file.
func embeddedPath(cfg config.Config) (string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	return cfg.EmbeddedPath(), nil
}

// migrate applies the PostgreSQL migrations, or creates (and migrates) the
// embedded store's file.
func migrate(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	if cfg.DatabaseURL != "" {
		redacted := config.RedactURL(cfg.DatabaseURL)
		if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return fmt.Errorf("migrate PostgreSQL at %s: %w", redacted, err)
		}
		log.Info("migrations applied", zap.String("store", "postgres"), zap.String("database_url", redacted))
		return nil
	}
	path, err := embeddedPath(cfg)
	if err != nil {
		return err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("open the embedded store at %s: %w", path, err)
	}
	if err := s.Close(); err != nil {
		return err
	}
	log.Info("migrations applied", zap.String("store", "embedded"), zap.String("path", path))
	return nil
}
