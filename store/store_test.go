package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/somaflow/somaflow/model"
)

func newWorkflow(n int) *model.Workflow {
	w := &model.Workflow{}
	for i := 0; i < n; i++ {
		name := fmt.Sprint("j", i)
		w.Jobs = append(w.Jobs, &model.Job{Name: &name, Command: []model.Arg{{Value: "true"}}})
		if i > 0 {
			w.Dependencies = append(w.Dependencies, model.Dependency{From: model.Element{Index: i - 1}, To: model.Element{Index: i}})
		}
	}
	return w
}

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestEdgesRoundTrip(t *testing.T) {
	deps := []model.Dependency{
		{From: model.Element{Index: 0}, To: model.Element{Index: 1}},
		{From: model.Element{Kind: model.GroupElement, Index: 3}, To: model.Element{Index: 100000}},
		{From: model.Element{Index: 7}, To: model.Element{Kind: model.GroupElement, Index: 0}},
	}
	got, err := DecodeEdges(EncodeEdges(deps))
	if err != nil || len(got) != len(deps) {
		t.Fatalf("%v %v", got, err)
	}
	for i := range deps {
		if got[i] != deps[i] {
			t.Fatalf("edge %d: %+v != %+v", i, got[i], deps[i])
		}
	}
	if _, err := DecodeEdges([]byte{0xff}); err == nil {
		t.Fatal("a truncated edge list decoded")
	}
	// 90,000 edges take a few bytes each, not a row each.
	big := make([]model.Dependency, 90000)
	for i := range big {
		big[i] = model.Dependency{From: model.Element{Index: i % 1000}, To: model.Element{Index: 1000 + i/100}}
	}
	if n := len(EncodeEdges(big)); n > 90000*6 {
		t.Fatalf("90,000 edges take %d bytes", n)
	}
	// Decoded in one allocation, of their size.
	enc := EncodeEdges(big)
	var back []model.Dependency
	if n := testing.AllocsPerRun(3, func() { back, _ = DecodeEdges(enc) }); n != 1 {
		t.Fatalf("decoding 90,000 edges took %v allocations", n)
	}
	if len(back) != len(big) || cap(back) != len(big) || back[89999] != big[89999] {
		t.Fatalf("%d edges decoded (capacity %d) for %d", len(back), cap(back), len(big))
	}
	if got, err := DecodeEdges(nil); got != nil || err != nil {
		t.Fatalf("no edges: %v %v", got, err)
	}
}

func TestCreateLoadAndModes(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	w := newWorkflow(3)
	w.Jobs[1].Configuration = nil
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: w, Expiration: time.Now().Add(time.Hour), Cwd: "/", Environ: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	row, err := s.GetWorkflow(ctx, id, true)
	if err != nil || row.Status != model.WorkflowNotStarted {
		t.Fatalf("%+v %v", row, err)
	}
	def, err := LoadDefinition(row)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Equivalent(w, def); err != nil {
		t.Fatalf("stored workflow differs: %v", err)
	}
	jobs, err := s.Jobs(ctx, id)
	if err != nil || len(jobs) != 3 || jobs[2].Name != "j2" || jobs[0].Status != model.JobNotSubmitted {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}
	if _, err := s.GetWorkflow(ctx, id+1, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown workflow: %v", err)
	}
	if _, err := s.GetJob(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	if err := s.AddIntent(ctx, 999, IntentStop, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("intent on unknown workflow: %v", err)
	}
	for _, p := range []string{s.Dir, filepath.Join(s.Dir, "somaflow.db")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

func TestCreateIsAllOrNothing(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	// A job row that cannot be stored (a trigger refuses the 3rd job) must
	// leave neither the workflow nor its first jobs behind.
	if err := s.db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW."index" = 2 BEGIN SELECT RAISE(ABORT, 'refused'); END`).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(3), Expiration: time.Now().Add(time.Hour)}); err == nil {
		t.Fatal("creation succeeded despite the trigger")
	}
	ws, _ := s.ListWorkflows(ctx)
	var n int64
	s.db.Model(&Job{}).Count(&n)
	if len(ws) != 0 || n != 0 {
		t.Fatalf("a failed creation left %d workflows and %d jobs", len(ws), n)
	}
}

func TestSchemaVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var m Meta
	s.db.Where("key = ?", "schema_version").First(&m)
	if m.Value != fmt.Sprint(SchemaVersion) {
		t.Fatalf("schema version %q", m.Value)
	}
	s.db.Save(&Meta{Key: "schema_version", Value: fmt.Sprint(SchemaVersion + 1)})
	s.Close()
	if _, err := Open(context.Background(), dir); err == nil {
		t.Fatal("a newer schema was accepted")
	}
}

// TestTableNames: the tables keep the names GORM's default naming gave them
// (the store names them itself, tables.go), so that databases made by
// earlier versions open as they are.
func TestTableNames(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	if err := s.db.Raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").Scan(&names).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, " "), "definitions intents jobs meta transfers workflows"; got != want {
		t.Errorf("tables %s, want %s", got, want)
	}
}

// TestConcurrentWriters: many connections (as many CLI processes would
// open) write at once and never see "database is locked".
func TestConcurrentWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dir)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for i := 0; i < 10; i++ {
				id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(20), Expiration: time.Now().Add(time.Hour)})
				if err != nil {
					errs <- err
					return
				}
				if err := s.AddIntent(ctx, id, IntentStop, false); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListWorkflows(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s2, _ := Open(ctx, dir)
	defer s2.Close()
	ws, _ := s2.ListWorkflows(ctx)
	if len(ws) != 80 {
		t.Fatalf("%d workflows stored, want 80", len(ws))
	}
}

func TestBatchCommit(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id, _ := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(2), Expiration: time.Now().Add(time.Hour)})
	jobs, _ := s.Jobs(ctx, id)
	zero, es := 0, model.ExitFinishedRegular
	jobs[0].Status, jobs[0].ExitStatus, jobs[0].ExitValue, jobs[0].Attempt = model.JobDone, &es, &zero, 1
	w, _ := s.GetWorkflow(ctx, id, false)
	w.Status = model.WorkflowInProgress
	if err := s.AddIntent(ctx, id, IntentStop, false); err != nil {
		t.Fatal(err)
	}
	var in Intent
	s.db.First(&in)
	if err := s.Commit(ctx, &Batch{Jobs: []*Job{&jobs[0]}, Workflows: []*Workflow{w}, DoneIntents: []int64{in.ID}}); err != nil {
		t.Fatal(err)
	}
	j, _ := s.GetJob(ctx, jobs[0].ID)
	if j.Status != model.JobDone || j.ExitValue == nil || *j.ExitValue != 0 || j.Attempt != 1 {
		t.Fatalf("job after commit: %+v (an exit value of 0 must be stored)", j)
	}
	if n, _ := s.PendingIntents(ctx, id); n != 0 {
		t.Fatalf("%d intents left", n)
	}
	if err := s.Commit(ctx, &Batch{Removed: []int64{id}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWorkflow(ctx, id, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed workflow: %v", err)
	}
	var n int64
	s.db.Model(&Job{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d jobs left after removal", n)
	}
}

func TestJobsBigWorkflow(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(25000), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 25000 {
		t.Fatalf("%d jobs", len(jobs))
	}
	for i, j := range jobs {
		if j.Index != i || j.Name != fmt.Sprint("j", i) || j.Status != model.JobNotSubmitted || j.ExitValue != nil {
			t.Fatalf("job %d: %+v", i, j)
		}
	}
}

// workflowV1 is the workflows table of schema version 1, with the
// definition in the row.
type workflowV1 struct {
	ID         int64 `gorm:"primaryKey"`
	Name       *string
	Status     string
	Backend    string
	Queue      string
	MaxJobs    int
	Submitted  time.Time
	Expiration time.Time
	Definition []byte
	Edges      []byte
	Format     string
	Cwd        string
	Environ    []byte
	Loaded     bool
	Ended      *time.Time
}

func (workflowV1) TableName() string { return "workflows" }

func TestMigrationFromSchema1(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the fresh database back into a version-1 one holding a workflow.
	db := s.db
	for _, q := range []string{`DROP TABLE workflows`, `DROP TABLE definitions`} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AutoMigrate(&workflowV1{}); err != nil {
		t.Fatal(err)
	}
	w := newWorkflow(3)
	def := *w
	def.Dependencies = nil
	body, _ := json.Marshal(&def) // version 1 stored plain JSON
	name := "old"
	if err := db.Create(&workflowV1{Name: &name, Status: model.WorkflowDone, Definition: body, Edges: EncodeEdges(w.Dependencies),
		Environ: []byte(`["A=1"]`), Expiration: time.Now().Add(time.Hour)}).Error; err != nil {
		t.Fatal(err)
	}
	db.Save(&Meta{Key: "schema_version", Value: "1"})
	s.Close()

	s, err = Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("migration: %v", err)
	}
	defer s.Close()
	var m Meta
	s.db.Where("key = ?", "schema_version").First(&m)
	if m.Value != fmt.Sprint(SchemaVersion) {
		t.Fatalf("schema version after migration: %s", m.Value)
	}
	row, err := s.GetWorkflow(context.Background(), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadDefinition(row)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Equivalent(w, got); err != nil || string(row.Environ) != `["A=1"]` || *row.Name != "old" {
		t.Fatalf("migrated workflow differs: %v (environ %s)", err, row.Environ)
	}
	if s.db.Migrator().HasColumn("workflows", "definition") {
		t.Fatal("the old definition column is still there")
	}
}

func TestCheckpointTruncatesTheWAL(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	old := WALLimit
	WALLimit = 1 << 10
	defer func() { WALLimit = old }()
	if _, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(2000), Expiration: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	wal := filepath.Join(s.Dir, "somaflow.db-wal")
	if fi, err := os.Stat(wal); err != nil || fi.Size() < WALLimit {
		t.Fatalf("WAL not written: %v", err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(wal); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL still %d bytes after the checkpoint", fi.Size())
	}
	if ws, _ := s.ListWorkflows(ctx); len(ws) != 1 {
		t.Fatal("the workflow is gone after the checkpoint")
	}
}

// TestDiscardStore: a Discard store (run's private state) is a WAL database
// whose connections commit with synchronous=NORMAL, like any other, and
// what it committed is there when it is opened again after its close.
func TestDiscardStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := OpenWith(ctx, dir, OpenOptions{Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := s.db.Raw("PRAGMA journal_mode").Scan(&mode).Error; err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v", mode, err)
	}
	// Every connection of the pool, held at once: none is left unsynced.
	sqlDB, err := s.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		var sync int
		if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 1 {
			t.Fatalf("connection %d: synchronous %d (want 1, NORMAL), %v", i, sync, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(2), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var check string
	if err := s.db.Raw("PRAGMA integrity_check").Scan(&check).Error; err != nil || check != "ok" {
		t.Fatalf("integrity check %q, %v", check, err)
	}
	if jobs, err := s.Jobs(ctx, id); err != nil || len(jobs) != 2 {
		t.Fatalf("jobs after reopening: %d, %v", len(jobs), err)
	}
}
