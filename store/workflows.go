package store

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/somaflow/somaflow/model"
)

// EncodeEdges packs dependencies as pairs of uvarints, index<<1 | kind for
// each end: 90,000 edges take a few hundred kilobytes instead of 90,000 rows.
func EncodeEdges(deps []model.Dependency) []byte {
	buf := make([]byte, 0, len(deps)*6)
	for _, d := range deps {
		buf = binary.AppendUvarint(buf, uint64(d.From.Index)<<1|uint64(d.From.Kind))
		buf = binary.AppendUvarint(buf, uint64(d.To.Index)<<1|uint64(d.To.Kind))
	}
	return buf
}

// DecodeEdges reverses EncodeEdges.
func DecodeEdges(b []byte) ([]model.Dependency, error) {
	// Each uvarint ends with a byte below 0x80: the list is allocated
	// once, at its size (a million edges, 32 MB; grown by doubling, they
	// took 150 MB).
	ends := 0
	for _, c := range b {
		if c < 0x80 {
			ends++
		}
	}
	var deps []model.Dependency
	if ends >= 2 {
		deps = make([]model.Dependency, 0, ends/2)
	}
	var el [2]model.Element
	for i := 0; len(b) > 0; i++ {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("corrupt edge list")
		}
		b = b[n:]
		el[i%2] = model.Element{Kind: model.ElementKind(v & 1), Index: int(v >> 1)}
		if i%2 == 1 {
			deps = append(deps, model.Dependency{From: el[0], To: el[1]})
		}
	}
	return deps, nil
}

// NewWorkflow describes a workflow to store.
type NewWorkflow struct {
	Def        *model.Workflow
	Format     string
	Name       *string
	Backend    string
	Queue      string
	MaxJobs    int
	Expiration time.Time
	Cwd        string
	Environ    []string
	// SharedPaths are the translated shared resource paths, by index.
	SharedPaths []string
	// StageTransfers copies the workflow's file transfers into the state
	// dir's transfer dir (a remote resource's way); without it, jobs use
	// the client paths themselves (soma-workflow's light mode).
	StageTransfers bool
}

// CreateWorkflow stores a (validated) workflow and its jobs in ONE
// transaction: an error leaves nothing behind. It returns the workflow id.
func (s *Store) CreateWorkflow(ctx context.Context, nw NewWorkflow) (int64, error) {
	def := *nw.Def
	deps := def.Dependencies
	def.Dependencies = nil
	defJSON, err := encodeDefinition(&def)
	if err != nil {
		return 0, fmt.Errorf("encode workflow: %w", err)
	}
	env, _ := json.Marshal(nw.Environ)
	var shared []byte
	if len(nw.SharedPaths) > 0 {
		shared, _ = json.Marshal(nw.SharedPaths)
	}
	now := time.Now().UTC()
	row := Workflow{
		Name: nw.Name, Status: model.WorkflowNotStarted, Backend: nw.Backend, Queue: nw.Queue,
		MaxJobs: nw.MaxJobs, Submitted: now, Expiration: nw.Expiration.UTC(),
		Definition: defJSON, Edges: EncodeEdges(deps), Format: nw.Format,
		Cwd: nw.Cwd, Environ: env, SharedPaths: shared,
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if err := tx.Create(&Definition{WorkflowID: row.ID, Body: row.Definition, Edges: row.Edges, Environ: row.Environ, SharedPaths: row.SharedPaths, TempPaths: tempPathInfos(&def)}).Error; err != nil {
			return err
		}
		if err := createTransfers(tx, s.Dir, row.ID, &def, !nw.StageTransfers, row.Expiration); err != nil {
			return err
		}
		return insertJobs(ctx, tx, row.ID, def.Jobs)
	})
	if err != nil {
		return 0, fmt.Errorf("store workflow: %w", err)
	}
	return row.ID, nil
}

// jobInsertRows is how many jobs one INSERT statement stores.
const jobInsertRows = 200

// insertJobs stores the new jobs of a workflow, in definition order, with
// a prepared statement of many rows: the rows are made from the
// definition as they go, none is built in memory for all of them (a
// million jobs took gigabytes through GORM's batches). The columns not
// named stay NULL, as GORM's Create left them for a new job.
func insertJobs(ctx context.Context, tx *gorm.DB, wfID int64, jobs []*model.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	q, err := jobStatements(tx)
	if err != nil {
		return err
	}
	var names []string
	for _, f := range []string{"WorkflowID", "Index", "Name", "Barrier", "Priority", "Status", "Attempt", "DRMSID", "HandleVersion", "KillIntent", "Stdout", "Stderr"} {
		names = append(names, q.name(f))
	}
	cols := "(" + strings.Join(names, ", ") + ")"
	const marks = `(?, ?, ?, ?, ?, ?, 0, '', 0, false, '', '')`
	const perRow = 6
	stmtFor := func(rows int) string {
		return `INSERT INTO jobs ` + cols + ` VALUES ` + strings.TrimSuffix(strings.Repeat(marks+", ", rows), ", ")
	}
	sqlTx := tx.Statement.ConnPool // the transaction's
	var full *sql.Stmt
	if len(jobs) >= jobInsertRows {
		if full, err = sqlTx.PrepareContext(ctx, stmtFor(jobInsertRows)); err != nil {
			return err
		}
		defer full.Close()
	}
	args := make([]any, 0, jobInsertRows*perRow)
	for lo := 0; lo < len(jobs); lo += jobInsertRows {
		hi := min(lo+jobInsertRows, len(jobs))
		args = args[:0]
		for i, j := range jobs[lo:hi] {
			args = append(args, wfID, lo+i, j.DisplayName(), j.NoProcess(), j.Priority, model.JobNotSubmitted)
		}
		if hi-lo == jobInsertRows {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = sqlTx.ExecContext(ctx, stmtFor(hi-lo), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// encodeDefinition is the stored form of a workflow definition: its JSON,
// deflated (a 100,000-job definition is tens of megabytes of JSON, a few
// once compressed), written as a stream.
func encodeDefinition(def *model.Workflow) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(definitionDeflate)
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := writeDefinition(zw, def); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeDefinition writes what json.NewEncoder(w).Encode(def) writes, but
// the jobs one at a time: the encoder builds the whole text in memory first
// (a gigabyte for a million jobs, grown by doubling).
func writeDefinition(w io.Writer, def *model.Workflow) error {
	if def.Jobs == nil {
		return json.NewEncoder(w).Encode(def)
	}
	rest := *def
	rest.Jobs = nil
	text, err := json.Marshal(&rest)
	if err != nil {
		return err
	}
	// Jobs follows Name, a string or null, in which no unescaped quote can
	// stand: the first "Jobs":null is the field.
	const field = `"Jobs":null`
	at := bytes.Index(text, []byte(field))
	if at < 0 {
		return errors.New("encode definition: no Jobs field")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(text[:at])
	bw.WriteString(`"Jobs":[`)
	for i, j := range def.Jobs {
		if i > 0 {
			bw.WriteByte(',')
		}
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	bw.WriteByte(']')
	bw.Write(text[at+len(field):])
	bw.WriteByte('\n')
	return bw.Flush()
}

// definitionDeflate marks a deflated definition; plain JSON starts with '{'.
const definitionDeflate = 0x01

func decodeDefinition(data []byte, def *model.Workflow) error {
	return decodeDefinitionJobs(data, def, nil)
}

// decodeDefinitionJobs is decodeDefinition with the jobs decoded by sh
// (nil: each on its own).
func decodeDefinitionJobs(data []byte, def *model.Workflow, sh *jobSharer) error {
	if len(data) > 0 && data[0] == definitionDeflate {
		zr := flate.NewReader(bytes.NewReader(data[1:]))
		defer zr.Close()
		return decodeDefinitionStream(json.NewDecoder(zr), def, sh)
	}
	if sh == nil {
		return json.Unmarshal(data, def)
	}
	return decodeDefinitionStream(json.NewDecoder(bytes.NewReader(data)), def, sh)
}

// decodeDefinitionStream decodes a definition as json.Decoder.Decode would,
// but the jobs one at a time: decoding the whole object at once holds all
// of its text in the decoder's buffer (tens of megabytes for 100,000 jobs,
// grown by doubling), one job at a time holds one job's text. The other
// fields, small, are decoded together as usual.
func decodeDefinitionStream(dec *json.Decoder, def *model.Workflow, sh *jobSharer) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return fmt.Errorf("definition is not a JSON object")
	}
	rest := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if key != "Jobs" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			rest[key] = raw
			continue
		}
		if t, err = dec.Token(); err != nil {
			return err
		}
		switch t {
		case nil:
			def.Jobs = nil
		case json.Delim('['):
			jobs := []*model.Job{}
			for dec.More() {
				var j *model.Job
				var err error
				if sh != nil {
					j, err = sh.decode(dec)
				} else {
					err = dec.Decode(&j)
				}
				if err != nil {
					return err
				}
				jobs = append(jobs, j)
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			def.Jobs = jobs
		default:
			return fmt.Errorf("definition: Jobs is not a list")
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	others, err := json.Marshal(rest)
	if err != nil {
		return err
	}
	return json.Unmarshal(others, def)
}

// LoadDefinition decodes a stored workflow's definition with its edges.
func LoadDefinition(w *Workflow) (*model.Workflow, error) {
	return loadDefinition(w, nil)
}

// LoadDefinitionShared decodes a stored workflow's definition as
// LoadDefinition does, for a reader that never looks at the jobs' names
// (the engine: the job rows have them): every job's Name is nil, and jobs
// whose definitions are the same but for their names share one *model.Job
// (read-only to the caller), decoded once. A generated workflow of a
// million jobs that run the same command holds one definition instead of a
// million (hundreds of megabytes).
func LoadDefinitionShared(w *Workflow) (*model.Workflow, error) {
	return loadDefinition(w, &jobSharer{seen: map[string]*model.Job{}})
}

func loadDefinition(w *Workflow, sh *jobSharer) (*model.Workflow, error) {
	var def model.Workflow
	if err := decodeDefinitionJobs(w.Definition, &def, sh); err != nil {
		return nil, fmt.Errorf("workflow %d: corrupt definition: %w", w.ID, err)
	}
	deps, err := DecodeEdges(w.Edges)
	if err != nil {
		return nil, fmt.Errorf("workflow %d: %w", w.ID, err)
	}
	def.Dependencies = deps
	// encoding/json turns a nil RawMessage into null and back into "null":
	// restore the nils, so that a stored workflow equals the submitted one.
	// (Shared jobs were restored when decoded.)
	if sh == nil {
		for _, j := range def.Jobs {
			normalizeJob(j)
		}
	}
	for _, op := range def.OptionPaths {
		op.ParentPath = nullToNil(op.ParentPath)
	}
	return &def, nil
}

func normalizeJob(j *model.Job) {
	if j != nil {
		j.Configuration = nullToNil(j.Configuration)
		j.UserStorage = nullToNil(j.UserStorage)
	}
}

// jobSharer decodes the jobs of a definition, one *model.Job for all the
// jobs whose texts are the same once their names are left out.
type jobSharer struct {
	// seen maps a job's text without its name to its decoded job, up to
	// maxSharedText bytes of texts (then new texts are decoded on their
	// own, not remembered).
	seen     map[string]*model.Job
	seenText int
	// raw and key are reused from job to job: a job's text is not kept
	// (what is decoded from it is copied).
	raw, key json.RawMessage
}

// maxSharedText bounds the texts a jobSharer remembers: a workflow of
// different jobs costs this at most beside its jobs, while it loads.
const maxSharedText = 16 << 20

func (sh *jobSharer) decode(dec *json.Decoder) (*model.Job, error) {
	if err := dec.Decode(&sh.raw); err != nil {
		return nil, err
	}
	raw := sh.raw
	if string(raw) == "null" {
		return nil, nil
	}
	key := raw
	if s, e, ok := nameValue(raw); ok {
		sh.key = append(append(sh.key[:0], raw[:s]...), raw[e:]...)
		key = sh.key
	}
	if j, ok := sh.seen[string(key)]; ok {
		return j, nil
	}
	j := new(model.Job)
	if err := json.Unmarshal(raw, j); err != nil {
		return nil, err
	}
	j.Name = nil
	normalizeJob(j)
	if sh.seenText+len(key) <= maxSharedText {
		sh.seen[string(key)] = j
		sh.seenText += len(key)
	}
	return j, nil
}

// nameValue finds the value of the job's Name in the text of a job object
// as json.Marshal writes it, `{"Class":"...","Name":...`: raw[s:e] is the
// string or null. Any other text (ok false) is not shared.
func nameValue(raw []byte) (s, e int, ok bool) {
	const class, name = `{"Class":`, `,"Name":`
	if !bytes.HasPrefix(raw, []byte(class)) {
		return 0, 0, false
	}
	s, ok = stringEnd(raw, len(class))
	if !ok || !bytes.HasPrefix(raw[s:], []byte(name)) {
		return 0, 0, false
	}
	s += len(name)
	if bytes.HasPrefix(raw[s:], []byte("null")) {
		return s, s + 4, true
	}
	e, ok = stringEnd(raw, s)
	return s, e, ok
}

// stringEnd is the end of the JSON string that starts at raw[at].
func stringEnd(raw []byte, at int) (int, bool) {
	if at >= len(raw) || raw[at] != '"' {
		return 0, false
	}
	for p := at + 1; p < len(raw); p++ {
		switch raw[p] {
		case '\\':
			p++
		case '"':
			return p + 1, true
		}
	}
	return 0, false
}

func nullToNil(r json.RawMessage) json.RawMessage {
	if string(r) == "null" {
		return nil
	}
	return r
}

// PendingIntents counts the intents about a workflow that the engine has
// not carried out yet.
func (s *Store) PendingIntents(ctx context.Context, wfID int64) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Intent{}).Where("workflow_id = ?", wfID).Count(&n).Error
	return n, err
}

// GetWorkflow returns one workflow row (without its definition unless full).
func (s *Store) GetWorkflow(ctx context.Context, id int64, full bool) (*Workflow, error) {
	var w Workflow
	err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&w).Error
	if err != nil {
		return nil, fmt.Errorf("read workflow %d: %w", id, err)
	}
	if w.ID == 0 {
		return nil, fmt.Errorf("workflow %d: %w", id, ErrNotFound)
	}
	if full {
		var d Definition
		if err := s.db.WithContext(ctx).Where("workflow_id = ?", id).Limit(1).Find(&d).Error; err != nil {
			return nil, fmt.Errorf("read workflow %d: %w", id, err)
		}
		w.Definition, w.Edges, w.Environ, w.SharedPaths = d.Body, d.Edges, d.Environ, d.SharedPaths
	}
	return &w, nil
}

// ListWorkflows returns every workflow row, oldest first, without definitions.
func (s *Store) ListWorkflows(ctx context.Context) ([]Workflow, error) {
	var ws []Workflow
	err := s.db.WithContext(ctx).Order("id").Find(&ws).Error
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return ws, nil
}

// GetJob returns one job.
func (s *Store) GetJob(ctx context.Context, id int64) (*Job, error) {
	var j Job
	if err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&j).Error; err != nil {
		return nil, fmt.Errorf("read job %d: %w", id, err)
	}
	if j.ID == 0 {
		return nil, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return &j, nil
}

// AddIntent records a command for the engine about an existing workflow.
func (s *Store) AddIntent(ctx context.Context, wfID int64, kind string, force bool) error {
	return s.AddIntentQueue(ctx, wfID, kind, force, "")
}

// AddIntentQueue is AddIntent with the queue a restart submits to.
func (s *Store) AddIntentQueue(ctx context.Context, wfID int64, kind string, force bool, queue string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Workflow{}).Where("id = ?", wfID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("workflow %d: %w", wfID, ErrNotFound)
		}
		if kind == IntentDelete {
			if err := tx.Model(&Workflow{}).Where("id = ?", wfID).Update("status", model.WorkflowDeletePending).Error; err != nil {
				return err
			}
		}
		return tx.Create(&Intent{WorkflowID: wfID, Kind: kind, Force: force, Queue: queue, Created: time.Now().UTC()}).Error
	})
}

// SetExpiration changes a workflow's expiration date.
func (s *Store) SetExpiration(ctx context.Context, wfID int64, t time.Time) error {
	res := s.db.WithContext(ctx).Model(&Workflow{}).Where("id = ?", wfID).Update("expiration", t.UTC())
	if res.Error != nil {
		return fmt.Errorf("set expiration of workflow %d: %w", wfID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("workflow %d: %w", wfID, ErrNotFound)
	}
	return nil
}

// Jobs returns the jobs of a workflow in definition order, read without
// GORM's reflection and, for big workflows, in two halves at once: a
// 100,000-job workflow is one quick scan, for the engine's load as for the
// status document. The halves are ranges of row ids, which the index on
// workflow_id serves in order (it holds the row id); each row goes to the
// place its index says, so SQLite never sorts (ordering by "index" made it
// copy every row into a temporary B-tree).
func (s *Store) Jobs(ctx context.Context, wfID int64) ([]Job, error) {
	var jobs []Job
	if err := s.eachJob(ctx, wfID, readFull, func(n int) { jobs = make([]Job, n) }, func(j *Job) { jobs[j.Index] = *j }); err != nil {
		return nil, err
	}
	return jobs, nil
}

// EngineJobs returns the jobs of a workflow as Jobs does, but the rows of
// the jobs that succeeded come without their details (see DropDetails;
// their times excepted), which the engine does not keep: a million
// succeeded rows are not read whole only to be dropped.
func (s *Store) EngineJobs(ctx context.Context, wfID int64) ([]Job, error) {
	var jobs []Job
	if err := s.eachJob(ctx, wfID, readEngine, func(n int) { jobs = make([]Job, n) }, func(j *Job) { jobs[j.Index] = *j }); err != nil {
		return nil, err
	}
	return jobs, nil
}

// What eachJob reads of each job.
type jobRead int

const (
	readState  jobRead = iota // the columns of EachJobState
	readFull                  // every column
	readEngine                // every column, without the details of the jobs that succeeded
)

// EachJobState reads the jobs of a workflow as Jobs does, without the
// columns only the engine uses (Barrier, Priority, HandleVersion, Handle,
// KillIntent and OutputParams stay zero) and without making a slice of
// them — what a status document shows: alloc is told the number of jobs first, then put is given each job, in
// no particular order, from up to two goroutines at once (never two calls
// for the same Index); the job is reused once put returns, the values its
// pointers and slices hold are not.
func (s *Store) EachJobState(ctx context.Context, wfID int64, alloc func(n int), put func(j *Job)) error {
	return s.eachJob(ctx, wfID, readState, alloc, put)
}

// EachJobStateInOrder gives put the jobs of a workflow one at a time in
// definition order (Index 0, 1, ...), with the columns of EachJobState:
// what a status document streamed job by job needs, in memory that does
// not grow with the workflow. The job is reused once put returns; an
// error from put stops the reading and is returned. A workflow whose rows
// do not have the indexes 0..n-1 exactly is an error.
func (s *Store) EachJobStateInOrder(ctx context.Context, wfID int64, put func(j *Job) error) error {
	next := 0
	return s.eachJobInOrder(ctx, wfID, "", func(j *Job) error {
		if j.Index != next {
			return fmt.Errorf("read jobs of workflow %d: job %d has index %d where %d was expected", wfID, j.ID, j.Index, next)
		}
		next++
		return put(j)
	})
}

// EachUnsuccessfulJob gives put, as EachJobStateInOrder does, only the
// jobs of a workflow that ended without succeeding (model.Succeeded), and
// those that succeeded but have a reason (a log that could not be kept):
// what a summary lists and where failed jobs are, found by the database
// without a row of the others read.
func (s *Store) EachUnsuccessfulJob(ctx context.Context, wfID int64, put func(j *Job) error) error {
	_, q, err := s.jobReader()
	if err != nil {
		return err
	}
	// A NULL in q.succeeded is a job that did not succeed.
	where := fmt.Sprintf(` AND %s IN ('%s', '%s') AND (NOT coalesce(%s, 0) OR coalesce(%s, '') <> '')`,
		q.name("Status"), model.JobDone, model.JobFailed, q.succeeded, q.name("Reason"))
	return s.eachJobInOrder(ctx, wfID, where, put)
}

// eachJobInOrder gives put the jobs of a workflow (and the condition
// where, " AND ..."), in definition order, one at a time, with the columns
// of EachJobState; the job is reused once put returns.
func (s *Store) eachJobInOrder(ctx context.Context, wfID int64, where string, put func(j *Job) error) error {
	sqlDB, q, err := s.jobReader()
	if err != nil {
		return err
	}
	rows, err := sqlDB.QueryContext(ctx, q.selectState+` WHERE workflow_id = ?`+where+` ORDER BY `+q.name("Index"), wfID)
	if err != nil {
		return fmt.Errorf("read jobs of workflow %d: %w", wfID, err)
	}
	defer rows.Close()
	var j Job
	dest := jobDests(&j, false)
	for rows.Next() {
		j = Job{WorkflowID: wfID}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read jobs of workflow %d: %w", wfID, err)
		}
		if err := put(&j); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read jobs of workflow %d: %w", wfID, err)
	}
	return nil
}

// jobReader is the database and the job statements, for reading job rows
// outside GORM.
func (s *Store) jobReader() (*sql.DB, *jobSQL, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, nil, err
	}
	q, err := jobStatements(s.db)
	return sqlDB, q, err
}

func (s *Store) eachJob(ctx context.Context, wfID int64, read jobRead, alloc func(n int), put func(j *Job)) error {
	sqlDB, q, err := s.jobReader()
	if err != nil {
		return err
	}
	var n int
	var minID, maxID sql.NullInt64
	if err := sqlDB.QueryRowContext(ctx, `SELECT count(*), min(id), max(id) FROM jobs WHERE workflow_id = ?`, wfID).Scan(&n, &minID, &maxID); err != nil {
		return fmt.Errorf("read jobs of workflow %d: %w", wfID, err)
	}
	alloc(n)
	if n == 0 {
		return nil
	}
	parts := int64(1)
	if n >= 20000 {
		parts = 2
	}
	span := maxID.Int64 - minID.Int64 + 1
	filled := make([]bool, n)
	counts := make([]int, parts)
	errs := make(chan error, parts)
	for p := int64(0); p < parts; p++ {
		lo, hi := minID.Int64+span*p/parts, minID.Int64+span*(p+1)/parts
		go func() { errs <- scanJobs(ctx, sqlDB, q, wfID, filled, lo, hi, &counts[p], read, put) }()
	}
	for p := int64(0); p < parts; p++ {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		read := 0
		for _, c := range counts {
			read += c
		}
		if read != n {
			err = fmt.Errorf("%d jobs read, %d counted", read, n)
		}
	}
	if err == nil {
		// n rows placed in n slots: a slot left empty means two rows gave
		// the same index.
		for i, ok := range filled {
			if !ok {
				err = fmt.Errorf("no job has index %d", i)
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("read jobs of workflow %d: %w", wfID, err)
	}
	return nil
}

// scanJobs gives put the jobs whose row id is in [lo, hi), marks their
// indexes filled and counts them, read as read says.
func scanJobs(ctx context.Context, db *sql.DB, q *jobSQL, wfID int64, filled []bool, lo, hi int64, count *int, read jobRead, put func(*Job)) error {
	sel := q.selectState
	switch read {
	case readFull:
		sel = q.selectFull
	case readEngine:
		sel = q.selectEngine
	}
	rows, err := db.QueryContext(ctx, sel+` WHERE workflow_id = ? AND id >= ? AND id < ?`, wfID, lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	var j Job
	dest := jobDests(&j, read != readState)
	for rows.Next() {
		// Pointers read before are kept by put's callee: each row gets
		// its own (a NULL leaves nil).
		j = Job{WorkflowID: wfID}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		internStatuses(&j)
		if j.Index < 0 || j.Index >= len(filled) {
			return fmt.Errorf("job %d has index %d, out of the %d jobs", j.ID, j.Index, len(filled))
		}
		filled[j.Index] = true
		put(&j)
		*count++
	}
	return rows.Err()
}

// statusStrings are the job and exit statuses: a status read is replaced
// by the one string of its value, so that a million rows do not hold a
// million copies of "not_submitted".
var statusStrings = func() map[string]string {
	m := map[string]string{}
	for _, s := range append([]string{model.JobNotSubmitted, model.JobUndetermined, model.JobQueuedActive,
		model.JobSystemOnHold, model.JobUserOnHold, model.JobUserSystemOnHold, model.JobRunning,
		model.JobSystemSuspended, model.JobUserSuspended, model.JobUserSystemSuspended, model.JobDone,
		model.JobFailed, model.JobDeletePending, model.JobKillPending, model.JobSubmissionPending,
		model.JobWarning}, model.ExitStatuses...) {
		m[s] = s
	}
	return m
}()

func internStatuses(j *Job) {
	if s, ok := statusStrings[j.Status]; ok {
		j.Status = s
	}
	if j.ExitStatus != nil {
		if s, ok := statusStrings[*j.ExitStatus]; ok {
			*j.ExitStatus = s
		}
	}
}

// RemoveWorkflow removes a workflow with its jobs, intents and definition
// at once, without an engine: what a forced delete does when the engine
// cannot carry the delete out. ErrNotFound when it is not there.
func (s *Store) RemoveWorkflow(ctx context.Context, wfID int64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM workflows WHERE id = ?`, wfID)
		if res.Error != nil {
			return fmt.Errorf("remove workflow %d: %w", wfID, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("workflow %d: %w", wfID, ErrNotFound)
		}
		for _, q := range removeQueries[:4] {
			if err := tx.Exec(q, wfID).Error; err != nil {
				return fmt.Errorf("remove workflow %d: %w", wfID, err)
			}
		}
		return nil
	})
}

// CountUnsucceeded counts the jobs of a workflow that did not succeed
// (anything but done, finished_regularly, exit value 0): what a restart
// runs again.
func (s *Store) CountUnsucceeded(ctx context.Context, wfID int64) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Job{}).
		Where("workflow_id = ? AND NOT (status = ? AND exit_status = ? AND exit_value = 0)", wfID, model.JobDone, model.ExitFinishedRegular).
		Count(&n).Error
	return n, err
}

// WorkflowsToLoad returns the workflows no engine has taken in hand yet,
// oldest first; at an engine's start also those an earlier engine left
// unfinished.
func (s *Store) WorkflowsToLoad(ctx context.Context, startup bool) ([]Workflow, error) {
	var rows []Workflow
	q := s.db.WithContext(ctx).Where("loaded = ?", false)
	if startup {
		q = s.db.WithContext(ctx).Where("loaded = ? OR status IN ?", false,
			[]string{model.WorkflowNotStarted, model.WorkflowInProgress, model.WorkflowDeletePending})
	}
	if err := q.Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("scan workflows: %w", err)
	}
	return rows, nil
}

// Intents returns every intent not carried out yet, oldest first.
func (s *Store) Intents(ctx context.Context) ([]Intent, error) {
	var intents []Intent
	if err := s.db.WithContext(ctx).Order("id").Find(&intents).Error; err != nil {
		return nil, fmt.Errorf("scan intents: %w", err)
	}
	return intents, nil
}

// ExpiredWorkflows returns the ids of the workflows whose expiration date
// is before now.
func (s *Store) ExpiredWorkflows(ctx context.Context, now time.Time) ([]int64, error) {
	var ids []int64
	if err := s.db.WithContext(ctx).Model(&Workflow{}).Where("expiration < ?", now.UTC()).Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("scan expirations: %w", err)
	}
	return ids, nil
}

// RefuseWorkflow ends every job of a workflow that cannot run at all
// (failed, aborted, reason saying why) and marks the workflow done, in one
// transaction.
func (s *Store) RefuseWorkflow(ctx context.Context, id int64, reason string, now time.Time) error {
	now = now.UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Job{}).Where("workflow_id = ? AND status NOT IN ?", id, []string{model.JobDone, model.JobFailed}).
			Updates(map[string]any{"status": model.JobFailed, "exit_status": model.ExitAborted, "reason": reason, "ended": now}).Error; err != nil {
			return err
		}
		return tx.Model(&Workflow{}).Where("id = ?", id).
			Updates(map[string]any{"status": model.WorkflowDone, "loaded": true, "ended": now}).Error
	})
}
