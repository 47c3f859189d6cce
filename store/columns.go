package store

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/somaflow/somaflow/model"
)

// jobCol is one column of the jobs table, listed once: the Job field it
// holds (its SQL name comes from the GORM schema, as the table was made),
// where a read puts it, the value an engine commit saves (nil: set when the
// job is created and never changed), and whether a status document reads
// it (else only the engine's full load does).
type jobCol struct {
	field string
	dest  func(j *Job) any
	save  func(j *Job) any
	state bool
}

// jobCols are the columns reads and commits use; a nullable column's
// field is a pointer, which a read sets to nil for NULL.
var jobCols = []jobCol{
	{"ID", func(j *Job) any { return &j.ID }, nil, true},
	{"Index", func(j *Job) any { return &j.Index }, nil, true},
	{"Name", func(j *Job) any { return &j.Name }, nil, true},
	{"Status", func(j *Job) any { return &j.Status }, func(j *Job) any { return j.Status }, true},
	{"ExitStatus", func(j *Job) any { return &j.ExitStatus }, func(j *Job) any { return j.ExitStatus }, true},
	{"ExitValue", func(j *Job) any { return &j.ExitValue }, func(j *Job) any { return j.ExitValue }, true},
	{"Signal", func(j *Job) any { return &j.Signal }, func(j *Job) any { return j.Signal }, true},
	{"Reason", func(j *Job) any { return &j.Reason }, func(j *Job) any { return j.Reason }, true},
	{"Attempt", func(j *Job) any { return &j.Attempt }, func(j *Job) any { return j.Attempt }, true},
	{"DRMSID", func(j *Job) any { return &j.DRMSID }, func(j *Job) any { return j.DRMSID }, true},
	{"Submitted", func(j *Job) any { return &j.Submitted }, func(j *Job) any { return j.Submitted }, true},
	{"Started", func(j *Job) any { return &j.Started }, func(j *Job) any { return j.Started }, true},
	{"Ended", func(j *Job) any { return &j.Ended }, func(j *Job) any { return j.Ended }, true},
	{"Stdout", func(j *Job) any { return &j.Stdout }, func(j *Job) any { return j.Stdout }, true},
	{"Stderr", func(j *Job) any { return &j.Stderr }, func(j *Job) any { return j.Stderr }, true},
	{"WallS", func(j *Job) any { return &j.WallS }, func(j *Job) any { return j.WallS }, true},
	{"CPUS", func(j *Job) any { return &j.CPUS }, func(j *Job) any { return j.CPUS }, true},
	{"MaxRSSKiB", func(j *Job) any { return &j.MaxRSSKiB }, func(j *Job) any { return j.MaxRSSKiB }, true},
	{"UsageRaw", func(j *Job) any { return &j.UsageRaw }, func(j *Job) any { return j.UsageRaw }, true},
	{"Barrier", func(j *Job) any { return &j.Barrier }, nil, false},
	{"Priority", func(j *Job) any { return &j.Priority }, nil, false},
	{"HandleVersion", func(j *Job) any { return &j.HandleVersion }, func(j *Job) any { return j.HandleVersion }, false},
	{"Handle", func(j *Job) any { return &j.Handle }, func(j *Job) any { return j.Handle }, false},
	{"KillIntent", func(j *Job) any { return &j.KillIntent }, func(j *Job) any { return j.KillIntent }, false},
	{"OutputParams", func(j *Job) any { return &j.OutputParams }, func(j *Job) any { return j.OutputParams }, false},
}

// detailCols are the columns of a job's outcome details that the engine
// does not keep for a job that succeeded (see Job.DropDetails).
var detailCols = map[string]bool{
	"Submitted": true, "Started": true, "Ended": true, "Stdout": true, "Stderr": true,
	"WallS": true, "CPUS": true, "MaxRSSKiB": true, "UsageRaw": true, "Handle": true,
}

// DropDetails clears the outcome details of a job (handle, times, log
// paths, resource usage): what the engine reads of a job that succeeded is
// left, the rest of its row is in the store. A row without its details
// must never be saved.
func (j *Job) DropDetails() {
	for _, c := range jobCols {
		if !detailCols[c.field] {
			continue
		}
		switch d := c.dest(j).(type) {
		case *string:
			*d = ""
		case *[]byte:
			*d = nil
		case **time.Time:
			*d = nil
		case **float64:
			*d = nil
		case **int64:
			*d = nil
		default:
			panic(fmt.Sprintf("job column %s: %T", c.field, d))
		}
	}
}

// jobSQL is the SQL made from jobCols, once per process.
type jobSQL struct {
	selectState, selectFull string              // SELECT ... FROM jobs (no WHERE)
	selectEngine            string              // selectFull without the details of jobs that succeeded (but their times)
	update                  string              // UPDATE jobs SET (saved columns) WHERE id = ?
	saved                   []jobCol            // the columns of update, in order
	name                    func(string) string // a field's column
	// succeeded is model.Succeeded as an SQL condition: true, false, or
	// NULL for a done job whose exit status or value is NULL.
	succeeded string
}

var (
	jobSQLOnce sync.Once
	jobSQLMade *jobSQL
	jobSQLErr  error
)

// jobStatements returns the job statements, made from jobCols and the
// schema of Job.
func jobStatements(db *gorm.DB) (*jobSQL, error) {
	jobSQLOnce.Do(func() { jobSQLMade, jobSQLErr = makeJobSQL(db) })
	return jobSQLMade, jobSQLErr
}

func makeJobSQL(db *gorm.DB) (*jobSQL, error) {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(&Job{}); err != nil {
		return nil, err
	}
	fields := map[string]*schema.Field{}
	for _, c := range jobCols {
		f := stmt.Schema.LookUpField(c.field)
		if f == nil {
			return nil, fmt.Errorf("job has no field %s", c.field)
		}
		fields[c.field] = f
	}
	q := &jobSQL{name: func(field string) string { return fmt.Sprintf("%q", stmt.Schema.LookUpField(field).DBName) }}
	q.succeeded = fmt.Sprintf("%s = '%s' AND %s = '%s' AND %s = 0", q.name("Status"), model.JobDone,
		q.name("ExitStatus"), model.ExitFinishedRegular, q.name("ExitValue"))
	var state, full, engine, sets []string
	for _, c := range jobCols {
		col := fmt.Sprintf("%q", fields[c.field].DBName)
		full = append(full, col)
		_, isTime := c.dest(&Job{}).(**time.Time)
		if detailCols[c.field] && !isTime {
			// (The driver reads a time from a column declared datetime,
			// which an expression is not: times are read, and dropped by
			// the engine.)
			none := "NULL"
			if _, ok := c.dest(&Job{}).(*string); ok {
				none = "''"
			}
			engine = append(engine, fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s END", q.succeeded, none, col))
		} else {
			engine = append(engine, col)
		}
		if c.state {
			state = append(state, col)
		}
		if c.save != nil {
			sets = append(sets, col+" = ?")
			q.saved = append(q.saved, c)
		}
	}
	table := fmt.Sprintf("%q", stmt.Schema.Table)
	q.selectState = "SELECT " + strings.Join(state, ", ") + " FROM " + table
	q.selectFull = "SELECT " + strings.Join(full, ", ") + " FROM " + table
	q.selectEngine = "SELECT " + strings.Join(engine, ", ") + " FROM " + table
	q.update = "UPDATE " + table + " SET " + strings.Join(sets, ", ") + " WHERE id = ?"
	return q, nil
}

// jobDests are the scan destinations of a read (full: every column, else
// those of the status document) into j.
func jobDests(j *Job, full bool) []any {
	dest := make([]any, 0, len(jobCols))
	for _, c := range jobCols {
		if full || c.state {
			dest = append(dest, c.dest(j))
		}
	}
	return dest
}
