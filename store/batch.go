package store

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// Batch is everything one engine cycle changed; Commit writes it in one
// transaction.
type Batch struct {
	// Jobs are saved whole (every mutable column).
	Jobs []*Job
	// Workflows get their status, loaded, ended and queue columns saved.
	Workflows []*Workflow
	// Intents to delete (carried out).
	DoneIntents []int64
	// Workflows to remove with their jobs and intents.
	Removed []int64
	// Backends whose problem changed: a nil problem clears it.
	Backends map[string]*BackendProblem
	// ClearBackends clears every recorded backend problem first (an
	// engine starting does not vouch for an earlier engine's view).
	ClearBackends bool
}

// removeQueries remove a workflow (its id the only argument), the
// workflow's row last.
var removeQueries = []string{`DELETE FROM jobs WHERE workflow_id = ?`, `DELETE FROM intents WHERE workflow_id = ?`,
	`DELETE FROM definitions WHERE workflow_id = ?`, `DELETE FROM workflows WHERE id = ?`}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Jobs) == 0 && len(b.Workflows) == 0 && len(b.DoneIntents) == 0 && len(b.Removed) == 0 && len(b.Backends) == 0 && !b.ClearBackends
}

// jobColumns are the job columns an engine cycle may change, with their
// values; names are mapped to columns through the GORM schema.
var jobColumns = []struct {
	field string
	value func(j *Job) any
}{
	{"Status", func(j *Job) any { return j.Status }},
	{"ExitStatus", func(j *Job) any { return j.ExitStatus }},
	{"ExitValue", func(j *Job) any { return j.ExitValue }},
	{"Signal", func(j *Job) any { return j.Signal }},
	{"Reason", func(j *Job) any { return j.Reason }},
	{"Attempt", func(j *Job) any { return j.Attempt }},
	{"DRMSID", func(j *Job) any { return j.DRMSID }},
	{"HandleVersion", func(j *Job) any { return j.HandleVersion }},
	{"Handle", func(j *Job) any { return j.Handle }},
	{"KillIntent", func(j *Job) any { return j.KillIntent }},
	{"Submitted", func(j *Job) any { return j.Submitted }},
	{"Started", func(j *Job) any { return j.Started }},
	{"Ended", func(j *Job) any { return j.Ended }},
	{"Stdout", func(j *Job) any { return j.Stdout }},
	{"Stderr", func(j *Job) any { return j.Stderr }},
	{"WallS", func(j *Job) any { return j.WallS }},
	{"CPUS", func(j *Job) any { return j.CPUS }},
	{"MaxRSSKiB", func(j *Job) any { return j.MaxRSSKiB }},
	{"UsageRaw", func(j *Job) any { return j.UsageRaw }},
	{"OutputParams", func(j *Job) any { return j.OutputParams }},
}

// jobUpdateSQL builds the UPDATE the engine prepares once: one statement
// per changed job instead of GORM's reflection on the hot path.
func jobUpdateSQL(db *gorm.DB) (string, error) {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(&Job{}); err != nil {
		return "", err
	}
	sets := make([]string, len(jobColumns))
	for i, c := range jobColumns {
		f := stmt.Schema.LookUpField(c.field)
		if f == nil {
			return "", fmt.Errorf("job has no field %s", c.field)
		}
		sets[i] = fmt.Sprintf("%q = ?", f.DBName)
	}
	return fmt.Sprintf("UPDATE %q SET %s WHERE id = ?", stmt.Schema.Table, strings.Join(sets, ", ")), nil
}

// Commit writes a batch in ONE transaction.
func (s *Store) Commit(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	s.stmtOnce.Do(func() {
		var q string
		if q, s.stmtErr = jobUpdateSQL(s.DB); s.stmtErr == nil {
			s.jobStmt, s.stmtErr = sqlDB.PrepareContext(context.WithoutCancel(ctx), q)
		}
	})
	if s.stmtErr != nil {
		return fmt.Errorf("prepare job update: %w", s.stmtErr)
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	removed := map[int64]bool{}
	for _, id := range b.Removed {
		removed[id] = true
	}
	if len(b.Jobs) > 0 {
		st := tx.StmtContext(ctx, s.jobStmt)
		args := make([]any, len(jobColumns)+1)
		for _, j := range b.Jobs {
			if removed[j.WorkflowID] {
				continue
			}
			for i, c := range jobColumns {
				args[i] = c.value(j)
			}
			args[len(args)-1] = j.ID
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("save job %d: %w", j.ID, err)
			}
		}
	}
	for _, w := range b.Workflows {
		if removed[w.ID] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE workflows SET status = ?, loaded = ?, ended = ?, queue = ? WHERE id = ?`, w.Status, w.Loaded, w.Ended, w.Queue, w.ID); err != nil {
			return fmt.Errorf("save workflow %d: %w", w.ID, err)
		}
	}
	for _, id := range b.DoneIntents {
		if _, err := tx.ExecContext(ctx, `DELETE FROM intents WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete intent %d: %w", id, err)
		}
	}
	for id := range removed {
		for _, q := range removeQueries {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete workflow %d: %w", id, err)
			}
		}
	}
	if b.ClearBackends {
		if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key LIKE ?`, backendKey+"%"); err != nil {
			return fmt.Errorf("clear backend problems: %w", err)
		}
	}
	for name, p := range b.Backends {
		if err := saveBackendProblem(ctx, tx, name, p); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
