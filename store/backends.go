package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// BackendProblem is what an engine records while a backend (DRMS) cannot
// be reached: since when, and the DRMS's own words. Commands in other
// processes read it to say why jobs wait (`status`, `run`).
type BackendProblem struct {
	Since   time.Time `json:"since"`
	Message string    `json:"message"`
}

// backendKey is the meta key of a backend's problem.
const backendKey = "backend_unreachable:"

func saveBackendProblem(ctx context.Context, tx *sql.Tx, name string, p *BackendProblem) error {
	if p == nil {
		if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, backendKey+name); err != nil {
			return fmt.Errorf("clear backend %s problem: %w", name, err)
		}
		return nil
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, backendKey+name, string(data)); err != nil {
		return fmt.Errorf("save backend %s problem: %w", name, err)
	}
	return nil
}

// BackendProblems returns the problems engines recorded, by backend name.
func (s *Store) BackendProblems(ctx context.Context) (map[string]BackendProblem, error) {
	var rows []Meta
	if err := s.db.WithContext(ctx).Where("key LIKE ?", backendKey+"%").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read backend problems: %w", err)
	}
	m := make(map[string]BackendProblem, len(rows))
	for _, r := range rows {
		var p BackendProblem
		if json.Unmarshal([]byte(r.Value), &p) == nil {
			m[strings.TrimPrefix(r.Key, backendKey)] = p
		}
	}
	return m, nil
}

// ClearBackendProblems forgets every recorded backend problem: an engine
// starting or stopping does not vouch for an earlier engine's view.
func (s *Store) ClearBackendProblems(ctx context.Context) error {
	if err := s.db.WithContext(ctx).Where("key LIKE ?", backendKey+"%").Delete(&Meta{}).Error; err != nil {
		return fmt.Errorf("clear backend problems: %w", err)
	}
	return nil
}
