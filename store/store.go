// Package store keeps somaflow's state in a database through GORM: SQLite by
// default, one file per user state dir, in WAL mode with synchronous=NORMAL,
// immediate write transactions and a busy timeout, so that many processes
// share it without "database is locked" errors. On a network filesystem it
// falls back to the rollback journal.
//
// The database is the source of truth and the command channel: clients write
// workflows and intents, the engine carries them out and records outcomes.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/schema"

	"github.com/somaflow/somaflow/privdir"
)

// SchemaVersion is the version of the schema this code writes; Open migrates
// older databases and refuses newer ones.
const SchemaVersion = 5

// ErrNotFound is returned for unknown workflow or job ids.
var ErrNotFound = errors.New("unknown object")

// Workflow is a stored workflow.
type Workflow struct {
	ID         int64 `gorm:"primaryKey"`
	Name       *string
	Status     string `gorm:"index"`
	Backend    string
	Queue      string
	MaxJobs    int
	Submitted  time.Time
	Expiration time.Time `gorm:"index"`
	// Definition is the model.Workflow (deflated JSON, without
	// dependencies), Edges the dependencies (see EncodeEdges) and Environ
	// the submitter's environment: they live in the definitions table (a
	// row of a few small columns stays quick to read) and are filled by
	// GetWorkflow(full).
	Definition []byte `gorm:"-"`
	Edges      []byte `gorm:"-"`
	// Format is the format of the submitted file ("soma" or "native").
	Format string
	// Cwd is the submitter's working directory.
	Cwd     string
	Environ []byte `gorm:"-"`
	// SharedPaths are the engine-side paths of the definition's shared
	// resource paths (JSON array, by index), translated at submission; in
	// the definitions table, filled by GetWorkflow(full).
	SharedPaths []byte `gorm:"-"`
	// Loaded is set by the engine once it has taken the workflow in hand.
	Loaded bool `gorm:"index"`
	Ended  *time.Time
}

// Job is the stored state of one job of a workflow.
type Job struct {
	ID         int64 `gorm:"primaryKey"`
	WorkflowID int64 `gorm:"index"`
	// Index is the job's position in the workflow definition.
	Index      int
	Name       string
	Barrier    bool
	Priority   int
	Status     string
	ExitStatus *string
	ExitValue  *int
	Signal     *string
	Reason     *string
	Attempt    int
	// DRMSID, HandleVersion and Handle are the backend's handle (opaque).
	DRMSID        string
	HandleVersion int
	Handle        []byte
	KillIntent    bool
	Submitted     *time.Time
	Started       *time.Time
	Ended         *time.Time
	Stdout        string
	Stderr        string
	WallS         *float64
	CPUS          *float64
	MaxRSSKiB     *int64
	UsageRaw      []byte
	OutputParams  []byte
}

// Definition holds the big parts of a stored workflow, apart from its row.
type Definition struct {
	WorkflowID int64 `gorm:"primaryKey;autoIncrement:false"`
	Body       []byte
	Edges      []byte
	Environ    []byte
	// SharedPaths: see Workflow.SharedPaths (schema 4).
	SharedPaths []byte
	// TempPaths: the definition's temporary paths (JSON array of
	// TempPathInfo, schema 5), read by status documents.
	TempPaths []byte
}

// Intent is a command for the engine: stop, restart or delete a workflow.
type Intent struct {
	ID         int64 `gorm:"primaryKey"`
	WorkflowID int64 `gorm:"index"`
	Kind       string
	Force      bool
	// Queue is the queue a restart submits to ("": the workflow's own).
	Queue   string
	Created time.Time
}

// Intent kinds.
const (
	IntentStop    = "stop"
	IntentRestart = "restart"
	IntentDelete  = "delete"
)

// Meta holds key/value facts about the database (schema version).
type Meta struct {
	Key   string `gorm:"primaryKey"`
	Value string
}

// Store is an open state database.
type Store struct {
	db  *gorm.DB // only this package speaks SQL
	Dir string
	// NetworkFS is true when the state dir is on a network filesystem.
	NetworkFS bool

	stmtOnce sync.Once
	jobStmt  *sql.Stmt
	stmtErr  error

	discard bool // OpenOptions.Discard
}

// OpenOptions are the options of OpenWith.
type OpenOptions struct {
	// Discard says that the state dir is removed once the store is closed
	// (the private state of `somaflow run`): its database need not outlive
	// a power cut, so creating it and closing it skip their fsyncs (a new
	// database's journal mode, set through a rollback journal: three
	// fsyncs; the checkpoint on close: three more). The commits in between
	// are as durable as ever (WAL, synchronous=NORMAL).
	Discard bool
}

// Open opens (creating if needed) the state dir and its database.
func Open(ctx context.Context, dir string) (*Store, error) {
	return OpenWith(ctx, dir, OpenOptions{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dir string, o OpenOptions) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state dir %q: %w", dir, err)
	}
	// The state dir holds environments, outputs and the database that says
	// what to run: private, and the user's own (a root engine must not run
	// what another user wrote there).
	if err := privdir.Ensure(abs); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s := &Store{Dir: abs, NetworkFS: isNetworkFS(abs), discard: o.Discard}
	journal := "WAL"
	if s.NetworkFS {
		journal = "DELETE"
		slog.Warn("state dir is on a network filesystem: using SQLite's rollback journal instead of WAL", "dir", abs)
	}
	path := filepath.Join(abs, dbName)
	if err := checkDatabase(abs, path); err != nil {
		return nil, err
	}
	if f, err := privdir.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		f.Close()
	} else {
		return nil, fmt.Errorf("database: %w", err)
	}
	// The journal mode is not in the DSN: it is persistent in the file, and
	// setting it on every connection makes concurrent opens fail with
	// "database is locked" (SQLite does not wait for that lock). It is set
	// below, once, when the file does not have it yet.
	dsn := fmt.Sprintf("file:%s?_synchronous=NORMAL&_busy_timeout=30000&_txlock=immediate&_foreign_keys=1&cache=private", path)
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{
		SkipDefaultTransaction: true,
		PrepareStmt:            true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		// Every table is named by its TableName method (tables.go), so that
		// GORM never asks its inflection package for a plural: compiling
		// its rules costs a process start more than all the rest of
		// opening the store (see third_party/inflection).
		NamingStrategy: schema.NamingStrategy{SingularTable: true},
	})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.db = db.WithContext(ctx)
	if s.discard {
		// The journal mode, then a write that starts the WAL (it syncs its
		// header on its first frame): user_version, rewritten unchanged.
		if err := s.unsynced(ctx, "PRAGMA journal_mode = "+journal, "PRAGMA user_version"); err != nil {
			s.Close()
			return nil, fmt.Errorf("database %s: set journal mode: %w", path, err)
		}
	}
	if err := s.setJournalMode(ctx, journal); err != nil {
		s.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// setJournalMode puts the database in the journal mode wanted (WAL, or the
// rollback journal on a network filesystem) if it is not in it yet, waiting
// while another process holds the lock this needs.
func (s *Store) setJournalMode(ctx context.Context, want string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var mode string
		err := s.db.Raw("PRAGMA journal_mode").Scan(&mode).Error
		if err == nil && strings.EqualFold(mode, want) {
			return nil
		}
		if err == nil {
			err = s.db.Raw("PRAGMA journal_mode = " + want).Scan(&mode).Error
			if err == nil && strings.EqualFold(mode, want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("journal mode is %s, not %s", mode, want)
			}
			return fmt.Errorf("set journal mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Store) migrate() error {
	// Every CLI command opens the store: when the schema is already this
	// version, nothing is inspected.
	var v string
	if err := s.db.Model(&Meta{}).Select("value").Where("key = ?", "schema_version").Limit(1).Scan(&v).Error; err == nil && v == fmt.Sprint(SchemaVersion) {
		return nil
	}
	return s.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.AutoMigrate(&Meta{}); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var m Meta
		err := tx.Where("key = ?", "schema_version").Limit(1).Find(&m).Error
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		var v int
		if m.Value != "" {
			fmt.Sscan(m.Value, &v)
			if v > SchemaVersion {
				return fmt.Errorf("database schema version %d is newer than this somaflow's (%d): upgrade somaflow", v, SchemaVersion)
			}
		}
		if err := tx.AutoMigrate(&Workflow{}, &Job{}, &Intent{}, &Definition{}, &Transfer{}); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if v == 1 {
			// Version 2 moved the definitions out of the workflows table.
			for _, q := range []string{
				`INSERT INTO definitions (workflow_id, body, edges, environ) SELECT id, definition, edges, environ FROM workflows`,
				`ALTER TABLE workflows DROP COLUMN definition`,
				`ALTER TABLE workflows DROP COLUMN edges`,
				`ALTER TABLE workflows DROP COLUMN environ`,
			} {
				if err := tx.Exec(q).Error; err != nil {
					return fmt.Errorf("migrate schema 1 to 2: %w", err)
				}
			}
		}
		return tx.Save(&Meta{Key: "schema_version", Value: fmt.Sprint(SchemaVersion)}).Error
	})
}

// WALLimit is the size past which Checkpoint truncates the write-ahead log.
var WALLimit int64 = 64 << 20

// Checkpoint copies the write-ahead log into the database and truncates it
// when it grew past WALLimit: SQLite's automatic checkpoints cannot restart
// a log that readers (clients waiting on workflows) keep using, and it would
// grow without bound during a long run. It waits for readers (busy timeout).
func (s *Store) Checkpoint(ctx context.Context) error {
	fi, err := os.Stat(filepath.Join(s.Dir, "somaflow.db-wal"))
	if err != nil || fi.Size() < WALLimit {
		return nil
	}
	return s.db.WithContext(ctx).Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	if s.discard {
		// The last connection closed checkpoints the WAL into the
		// database: without its fsyncs, for a database about to be
		// removed. Keeping one idle connection closes the others (their
		// close does not checkpoint while another is open); if one is
		// still in use, its close checkpoints with fsyncs, as before.
		sqlDB.SetMaxIdleConns(1)
		_ = s.unsynced(context.Background())
	}
	return sqlDB.Close()
}

// unsynced runs queries with synchronous=OFF on one connection of the
// pool (for a Discard store only: see OpenOptions), then sets it back to
// NORMAL, unless there were none: closing the store is next. A query
// "PRAGMA user_version" rewrites the version it reads.
func (s *Store) unsynced(ctx context.Context, queries ...string) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = OFF"); err != nil {
		return err
	}
	if len(queries) == 0 {
		return nil
	}
	for _, q := range queries {
		if q == "PRAGMA user_version" {
			var v int64
			if err = conn.QueryRowContext(ctx, q).Scan(&v); err == nil {
				_, err = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
			}
		} else {
			_, err = conn.ExecContext(ctx, q)
		}
		if err != nil {
			break
		}
	}
	if _, rerr := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err == nil {
		err = rerr
	}
	return err
}

// ErrLostDatabase is returned by Open when the state dir holds state
// (logs, a journal, a spool...) but its database is missing or empty: it
// was removed or truncated, and starting over would silently forget every
// workflow.
var ErrLostDatabase = errors.New("database missing or empty")

// stateMarks are what a state dir that was used holds besides its database:
// each is made only after some process opened the database, and so gave it
// content (setting the journal mode writes its first page); a trailing
// slash marks a directory. The engine lock (taken before the database is
// opened) and SQLite's own -wal and -shm files do not count.
var stateMarks = []string{"engine.log", "supervisor.journal", "supervisor.log", "logs/", "spool/", "params/"}

// Exists tells whether the state dir dir holds a database with content.
// Until it does, nothing else may be written there: a state dir with
// other files and no database is one whose database was lost (Open
// refuses it).
func Exists(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, dbName))
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// dbName is the database's file name in the state dir.
const dbName = "somaflow.db"

// checkDatabase refuses a missing or empty database in a state dir that was
// used. The marks are looked at first: one seen means the database had
// content before, so a database found empty after that was truncated, not
// being created by a concurrent process.
func checkDatabase(dir, path string) error {
	var found []string
	for _, m := range stateMarks {
		name, wantDir := strings.CutSuffix(m, "/")
		if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil && fi.IsDir() == wantDir {
			found = append(found, m)
		}
	}
	if len(found) == 0 {
		return nil // a new state dir
	}
	fi, err := os.Lstat(path)
	if err == nil && fi.Size() > 0 {
		return nil // its owner and type are checked when it is opened
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database: %w", err)
	}
	what := "missing"
	if err == nil {
		what = "empty (0 bytes)"
	}
	return fmt.Errorf("%w: %s is %s while the state dir holds %s: it was removed or truncated; "+
		"restore it from a backup, or move the state dir away to start afresh", ErrLostDatabase, path, what, strings.Join(found, ", "))
}

// Network filesystem magic numbers (statfs f_type).
var networkFS = map[int64]string{
	0x6969:     "nfs",
	0x0BD00BD0: "lustre",
	0x47504653: "gpfs",
	0x19830326: "beegfs",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x517B:     "smb",
}

func isNetworkFS(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	_, ok := networkFS[int64(st.Type)]
	return ok
}
