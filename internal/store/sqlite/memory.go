package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Memory is the path that opens a new, private store held in memory,
// deleted when the store is closed. Unlike SQLite's own ":memory:",
// which gives every connection a database of its own, it is one database
// shared by the store's writer and readers, like a file's: the store
// behaves exactly as on a file, because it is one, in a temporary
// directory on a memory-backed file system (/dev/shm where there is
// one, else the system's temporary directory).
const Memory = ":memory:"

// memoryBase is where Memory stores are created when it is a writable
// directory: a tmpfs on Linux, so the file is RAM and fsync costs nothing.
const memoryBase = "/dev/shm"

// openMemory opens a new Memory store. Its file starts as a copy of a
// database migrated once per process: applying the migrations is most
// of the cost of a new store, and tests open many.
func openMemory(ctx context.Context, opts Options) (*Store, error) {
	image, err := migratedImage(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := memoryDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "ledger.db")
	if err := os.WriteFile(path, image, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("sqlite: create an in-memory store: %w", err)
	}
	s, err := open(ctx, path, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.tempDir = dir
	return s, nil
}

// memoryDir creates the owner-only directory of a Memory store.
func memoryDir() (string, error) {
	if fi, err := os.Stat(memoryBase); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp(memoryBase, "creditledger-memory-"); err == nil {
			return dir, nil
		}
	}
	dir, err := os.MkdirTemp("", "creditledger-memory-")
	if err != nil {
		return "", fmt.Errorf("sqlite: create an in-memory store: %w", err)
	}
	return dir, nil
}

var memoryImage struct {
	once sync.Once
	data []byte
	err  error
}

// migratedImage returns the bytes of a freshly migrated database,
// made on first use.
func migratedImage(ctx context.Context) ([]byte, error) {
	memoryImage.once.Do(func() {
		memoryImage.data, memoryImage.err = makeMigratedImage(context.WithoutCancel(ctx))
	})
	return memoryImage.data, memoryImage.err
}

func makeMigratedImage(ctx context.Context) ([]byte, error) {
	dir, err := memoryDir()
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	path := filepath.Join(dir, "migrated.db")
	// Migrate and close: the last connection to close checkpoints the
	// WAL into the file, which then holds the whole database.
	if err := Migrate(ctx, path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path) //nolint:gosec // G304: our own temporary file
	if err != nil {
		return nil, fmt.Errorf("sqlite: read the migrated image: %w", err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return nil, fmt.Errorf("sqlite: the migrated image was not checkpointed (%s-wal remains)", path)
	}
	return data, nil
}
