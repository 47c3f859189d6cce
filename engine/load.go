package engine

// This file holds loading and recovery: the workflows and intents read
// from the store, and the re-attachment to the jobs of an earlier engine.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// scan loads new workflows, applies intents and sweeps expired workflows.
func (e *Engine) scan(ctx context.Context, startup bool) error {
	now := time.Now()
	e.lastScan = now
	rows, err := e.st.WorkflowsToLoad(ctx, startup)
	if err != nil {
		return err
	}
	for i := range rows {
		if _, ok := e.runs[rows[i].ID]; ok {
			continue
		}
		if err := e.load(ctx, &rows[i]); err != nil {
			e.log.Error("cannot load workflow", "workflow", rows[i].ID, "err", err)
		}
	}
	intents, err := e.st.Intents(ctx)
	if err != nil {
		return err
	}
	for _, in := range intents {
		w, err := e.ensureLoaded(ctx, in.WorkflowID)
		if err != nil {
			e.log.Error("cannot load workflow", "workflow", in.WorkflowID, "err", err)
		}
		if w != nil {
			switch in.Kind {
			case store.IntentStop:
				e.stop(w)
			case store.IntentRestart:
				if in.Queue != "" && in.Queue != w.row.Queue {
					w.row.Queue = in.Queue
					e.dirtyWf[w] = true
				}
				e.restart(w)
			case store.IntentDelete:
				w.deleting, w.force = true, w.force || in.Force
				e.stop(w)
			}
		}
		e.intents = append(e.intents, in.ID)
	}
	// Expired workflows are removed (also at start, so that an engine that
	// was not running catches up).
	expired, err := e.st.ExpiredWorkflows(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range expired {
		w, err := e.ensureLoaded(ctx, id)
		if err != nil || w == nil {
			e.removed = append(e.removed, id)
			continue
		}
		w.deleting, w.force = true, true
		e.stop(w)
	}
	e.releaseInputs(ctx)
	for _, w := range e.runs {
		e.maybeFinish(w)
	}
	return nil
}

func (e *Engine) ensureLoaded(ctx context.Context, id int64) (*wfRun, error) {
	if w := e.runs[id]; w != nil {
		return w, nil
	}
	row, err := e.st.GetWorkflow(ctx, id, true)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := e.load(ctx, row); err != nil {
		return nil, err
	}
	return e.runs[id], nil
}

// load takes a workflow in hand: builds its graph from the definition, its
// node states from the stored jobs, and re-attaches to submitted jobs.
func (e *Engine) load(ctx context.Context, row *store.Workflow) error {
	if row.Definition == nil {
		full, err := e.st.GetWorkflow(ctx, row.ID, true)
		if err != nil {
			return err
		}
		row = full
	}
	// The engine reads its jobs' names from their rows: the definition's
	// jobs that differ only by their names are one (read-only) *model.Job.
	def, err := store.LoadDefinitionShared(row)
	if err != nil {
		return err
	}
	// The rows of the jobs that succeeded come without the details the
	// engine does not keep (slimRow).
	rows, err := e.st.EngineJobs(ctx, row.ID)
	if err != nil {
		return err
	}
	if len(rows) != len(def.Jobs) {
		return fmt.Errorf("workflow %d: %d stored jobs for %d in its definition", row.ID, len(rows), len(def.Jobs))
	}
	b, err := e.backendFor(row.Backend)
	if err != nil {
		return e.refuse(ctx, row, fmt.Sprintf("backend %q cannot be used: %v", row.Backend, err))
	}
	w := &wfRun{b: b, row: row, def: def, g: buildGraph(def), linksTo: map[int][]model.ParamLink{}}
	w.maxJobs = row.MaxJobs // 0: only the backend's slots limit it
	for _, l := range def.ParamLinks {
		w.linksTo[l.Dest] = append(w.linksTo[l.Dest], l)
	}
	if len(row.SharedPaths) > 0 {
		if err := json.Unmarshal(row.SharedPaths, &w.sharedPaths); err != nil {
			return e.refuse(ctx, row, "translated shared resource paths: "+err.Error())
		}
	}
	env := environ(row)
	if def.EnvBuilderCode != "" {
		built, err := buildEnv(ctx, def.EnvBuilderCode, env, row.Cwd)
		if err != nil {
			return e.refuse(ctx, row, "env_builder_code: "+err.Error())
		}
		env = appendEnv(env, built) // below the workflow's env and the jobs'
	}
	w.baseEnv = drms.MergeEnv(appendEnv(env, def.Env))
	// The decoded definition is all the engine needs: the stored text (tens
	// of megabytes for 100,000 jobs) is not kept for the workflow's life,
	// nor the dependencies and groups, which the graph holds, nor the
	// parameter links, which linksTo holds.
	row.Definition, row.Edges, row.Environ, row.SharedPaths = nil, nil, nil, nil
	def.Dependencies, def.Groups, def.Root, def.ParamLinks = nil, nil, nil, nil
	// One allocation for every job, pointing at the rows as read (no
	// copy of them).
	js := make([]job, len(rows))
	w.jobs = make([]*job, len(rows))
	for i := range rows {
		js[i] = job{row: &rows[i], w: w}
		w.jobs[i] = &js[i]
	}
	e.runs[row.ID] = w
	if !row.Loaded {
		row.Loaded = true
		e.dirtyWf[w] = true
	}
	if err := e.loadTransfers(ctx, w); err != nil {
		e.log.Warn("file transfers", "workflow", row.ID, "err", err)
	}
	if err := e.makeTempPaths(w); err != nil {
		e.log.Warn("temporary paths", "workflow", row.ID, "err", err)
	}
	// Attempts whose intent was committed but not their handle are looked
	// for first (a crash between the two commits).
	for _, j := range w.jobs {
		if model.JobEnded(j.row.Status) || j.row.Status == model.JobNotSubmitted || j.row.DRMSID != "" {
			continue
		}
		h, found, never, err := e.locate(ctx, w, j)
		switch {
		case err != nil:
			e.relocateLater(j) // active (rebuild), without a handle
		case found:
			e.setHandle(j, h)
		case never:
			j.row.Status = model.JobNotSubmitted
			j.row.Attempt--
			e.markDirty(j)
		default:
			e.endRow(j, lostIntent())
		}
	}
	e.rebuild(w)
	// Re-attach to submitted attempts.
	for _, j := range w.jobs {
		if w.state[j.row.Index] != nActive || j.row.DRMSID == "" {
			continue
		}
		h := handleOf(j)
		b.handles[h.ID] = j
		st, err := b.be.Recover(ctx, h)
		if err != nil {
			e.log.Warn("recover job", "job", j.row.ID, "err", err)
			continue
		}
		e.observe(j, st)
	}
	return nil
}

func lostIntent() *drms.Outcome {
	return drms.Undetermined("the engine stopped between the submission intent and its confirmation; the DRMS cannot tell whether the job was submitted")
}

// refuse ends every job of a workflow that cannot run at all (its backend
// is unavailable in this build), naming why, and marks it done.
func (e *Engine) refuse(ctx context.Context, row *store.Workflow, reason string) error {
	e.log.Error("workflow cannot run", "workflow", row.ID, "reason", reason)
	defer e.notify(true)
	return e.st.RefuseWorkflow(ctx, row.ID, reason, time.Now())
}

// locate looks for an attempt whose submission intent was recorded but not
// its handle: found at the DRMS, or proved never submitted, or neither;
// err when the backend could not be asked (then none of them is known).
func (e *Engine) locate(ctx context.Context, w *wfRun, j *job) (h drms.Handle, found, never bool, err error) {
	loc, ok := w.b.be.(drms.Locator)
	if !ok {
		return h, false, false, nil
	}
	spec, _, serr := e.buildSpec(w, j)
	if serr != nil {
		return h, false, false, nil
	}
	h, found, never, err = loc.Locate(ctx, spec)
	if err != nil {
		e.log.Warn("cannot look for a job whose submission is not known; will ask again", "job", j.row.ID, "err", err)
	}
	return h, found, never, err
}

// relocateLater keeps job j, whose submission is not known and whose
// backend could not be asked, active until Locate answers (retryLocates).
func (e *Engine) relocateLater(j *job) {
	if !j.relocating {
		j.relocating = true
		e.relocate = append(e.relocate, j)
	}
}

// retryLocates asks again where the jobs whose Locate failed are (see
// located). It runs before poll asks the backends for the state of their
// jobs, which then includes those found.
func (e *Engine) retryLocates(ctx context.Context) {
	kept := e.relocate[:0]
	for _, j := range e.relocate {
		w := j.w
		if e.runs[w.row.ID] != w || w.state[j.row.Index] != nActive || j.row.DRMSID != "" {
			j.relocating = false
			continue // gone, or settled otherwise
		}
		h, found, never, err := e.locate(ctx, w, j)
		if err != nil {
			kept = append(kept, j)
			continue
		}
		j.relocating = false
		e.located(j, h, found, never)
	}
	clear(e.relocate[len(kept):])
	e.relocate = kept
}

// makeTempPaths creates the workflow's temporary paths in the state dir.
func (e *Engine) makeTempPaths(w *wfRun) error {
	if len(w.def.TempPaths) == 0 {
		return nil
	}
	dir := e.tmpDir(w.row.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w.tempPaths = make([]string, len(w.def.TempPaths))
	for i, tp := range w.def.TempPaths {
		p := TempPathFor(e.opts.StateDir, w.row.ID, i, tp.Suffix)
		w.tempPaths[i] = p
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if tp.IsDirectory {
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) removeTempPaths(w *wfRun) {
	if len(w.def.TempPaths) > 0 {
		os.RemoveAll(e.tmpDir(w.row.ID))
	}
}
