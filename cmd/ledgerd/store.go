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
func openStore(ctx context.Context, cfg config.Config, log *zap.Logger) (ledger.Store, error) {
	if cfg.DatabaseURL != "" {
		redacted := config.RedactURL(cfg.DatabaseURL)
		if cfg.MigrateOnStart {
			if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
				return nil, fmt.Errorf("migrate PostgreSQL at %s: %w", redacted, err)
			}
			log.Info("migrations applied", zap.String("store", "postgres"), zap.String("database_url", redacted))
		}
		s, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{
			MaxConns:    int32(cfg.DBMaxConns),
			GroupCommit: cfg.GroupCommit,
		})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL at %s: %w", redacted, err)
		}
		log.Info("store opened", zap.String("store", "postgres"), zap.String("database_url", redacted),
			zap.Bool("group_commit", cfg.GroupCommit))
		return s, nil
	}
	path, err := embeddedPath(cfg)
	if err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("open the embedded store at %s: %w", path, err)
	}
	log.Info("store opened", zap.String("store", "embedded"), zap.String("path", path))
	return s, nil
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
