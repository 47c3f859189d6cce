package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// JobCount is how many jobs of a workflow share one outcome: a status, an
// exit status ("" for none) and an exit value (nil for none).
type JobCount struct {
	Status     string
	ExitStatus string
	ExitValue  *int
	// N is the number of these jobs, WithReason how many of them have a
	// reason (a log that could not be kept, why a job failed...).
	N, WithReason int
}

// CountJobs counts the jobs of a workflow by outcome, in the database:
// without reading them one by one, in memory that does not grow with the
// workflow. It also returns the latest end of any of its jobs, to the
// second (the zero time when none ended).
func (s *Store) CountJobs(ctx context.Context, wfID int64) ([]JobCount, time.Time, error) {
	sqlDB, q, err := s.jobReader()
	if err != nil {
		return nil, time.Time{}, err
	}
	status, exitStatus, exitValue := q.name("Status"), q.name("ExitStatus"), q.name("ExitValue")
	// strftime reads the stored times whatever their offset from UTC.
	rows, err := sqlDB.QueryContext(ctx, fmt.Sprintf(`SELECT %s, coalesce(%s, ''), %s, count(*), sum(coalesce(%s, '') <> ''), max(CAST(strftime('%%s', %s) AS INTEGER))
		FROM jobs WHERE workflow_id = ? GROUP BY 1, 2, 3`, status, exitStatus, exitValue, q.name("Reason"), q.name("Ended")), wfID)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("count jobs of workflow %d: %w", wfID, err)
	}
	defer rows.Close()
	var out []JobCount
	var last int64
	for rows.Next() {
		var c JobCount
		var ev, ended sql.NullInt64
		if err := rows.Scan(&c.Status, &c.ExitStatus, &ev, &c.N, &c.WithReason, &ended); err != nil {
			return nil, time.Time{}, fmt.Errorf("count jobs of workflow %d: %w", wfID, err)
		}
		if ev.Valid {
			v := int(ev.Int64)
			c.ExitValue = &v
		}
		if ended.Valid && ended.Int64 > last {
			last = ended.Int64
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("count jobs of workflow %d: %w", wfID, err)
	}
	if last == 0 {
		return out, time.Time{}, nil
	}
	return out, time.Unix(last, 0).UTC(), nil
}
