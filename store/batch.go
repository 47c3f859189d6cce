package store

import (
	"context"
	"fmt"

	"github.com/somaflow/somaflow/model"
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
	// OutputsReady are output transfers whose job ended: those still
	// "do not exist" become "on computing resource side".
	OutputsReady []TransferRef
}

// TransferRef names a transfer of a workflow by its index.
type TransferRef struct {
	WorkflowID int64
	Index      int
}

// removeQueries remove a workflow (its id the only argument), the
// workflow's row last.
var removeQueries = []string{`DELETE FROM jobs WHERE workflow_id = ?`, `DELETE FROM intents WHERE workflow_id = ?`,
	`DELETE FROM definitions WHERE workflow_id = ?`, `DELETE FROM transfers WHERE workflow_id = ?`, `DELETE FROM workflows WHERE id = ?`}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Jobs) == 0 && len(b.Workflows) == 0 && len(b.DoneIntents) == 0 && len(b.Removed) == 0 && len(b.Backends) == 0 && !b.ClearBackends && len(b.OutputsReady) == 0
}

// Commit writes a batch in ONE transaction.
func (s *Store) Commit(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	q, err := jobStatements(s.db)
	if err != nil {
		return fmt.Errorf("job statements: %w", err)
	}
	s.stmtOnce.Do(func() {
		s.jobStmt, s.stmtErr = sqlDB.PrepareContext(context.WithoutCancel(ctx), q.update)
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
		args := make([]any, len(q.saved)+1)
		for _, j := range b.Jobs {
			if removed[j.WorkflowID] {
				continue
			}
			for i, c := range q.saved {
				args[i] = c.save(j)
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
	for _, r := range b.OutputsReady {
		if removed[r.WorkflowID] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET status = ? WHERE workflow_id = ? AND "index" = ? AND status = ?`,
			model.TransferOnCRSide, r.WorkflowID, r.Index, model.TransferDoNotExist); err != nil {
			return fmt.Errorf("output transfer %d of workflow %d: %w", r.Index, r.WorkflowID, err)
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
