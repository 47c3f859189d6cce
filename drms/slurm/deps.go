package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// SubmitAfter implements drms.DependencySubmitter (setting
// dependencies=true): a plain sbatch with
// --dependency=afterok:ID:ID... --kill-on-invalid-dep=yes, so that Slurm
// starts the job once every job of after completed with exit 0, and cancels
// it (JobState CANCELLED, Reason DependencyNeverSatisfied) as soon as one did
// not; Status then reports it Ended, failed / aborted_before_running, with a
// zero Started.
//
// after may hold plain jobs and array tasks (ARRAYID_TASK). When Slurm no
// longer knows one of them (purged after MinJobAge: sbatch says "Job
// dependency problem"), its outcome is read with Status: a dependency that
// did not succeed gives a handle whose Status is at once aborted_before_running
// (nothing is submitted); one that succeeded is dropped from the dependency
// list and the job submitted again. Errors are Submit's.
func (b *Backend) SubmitAfter(ctx context.Context, spec drms.JobSpec, after []drms.Handle) (drms.Handle, error) {
	if !b.deps {
		return drms.Handle{}, errors.New("slurm: dependencies are off (setting dependencies=true turns them on)")
	}
	ids := make([]string, 0, len(after))
	for _, a := range after {
		st, err := decodeHandle(a)
		if err != nil {
			return drms.Handle{}, err
		}
		if st.Ended != "" {
			return b.presetHandle(spec, "dependency", fmt.Sprintf("dependency %s never ran (%s)", a.ID, st.Reason)), nil
		}
		if !isJobID(a.ID) {
			return drms.Handle{}, fmt.Errorf("slurm: dependency %q is not a Slurm job id", a.ID)
		}
		ids = append(ids, a.ID)
	}
	// Slurm 22.05 takes a dependency on a job it no longer knows (purged
	// after MinJobAge) as satisfied: check that each is still known.
	b.mu.Lock()
	age := b.minJobAge
	b.mu.Unlock()
	if age == 0 {
		b.loadConfig(ctx)
	}
	if unsure := b.unverified(ids); len(unsure) > 0 {
		q, err := b.squeue(ctx)
		if err != nil {
			return drms.Handle{}, err
		}
		var gone []drms.Handle
		for _, a := range after {
			if _, known := q[a.ID]; !known && unsure[a.ID] {
				gone = append(gone, a)
			}
		}
		if len(gone) > 0 {
			h, done, left, err := b.decideGone(ctx, spec, gone, ids)
			if err != nil || done {
				return h, err
			}
			ids = left
		}
	}
	h, err := b.submit(ctx, spec, depArgs(ids))
	var se *drms.StartError
	if !errors.As(err, &se) || !strings.Contains(strings.ToLower(se.Reason), "dependency") {
		return withDeps(h, len(ids) > 0 && err == nil), err
	}
	// Slurm refused the dependency list: a job it forgot, most likely.
	st, serr := b.Status(ctx, after)
	if serr != nil {
		return drms.Handle{}, fmt.Errorf("slurm: sbatch refused the dependencies of %s (%s), and their status is unknown: %w", spec.Name(), se.Reason, serr)
	}
	var keep []string
	for _, a := range after {
		s := st[a.ID]
		switch {
		case s.Phase == drms.Ended && s.Outcome != nil && !model.Succeeded(s.Outcome.Status, s.Outcome.ExitStatus, s.Outcome.ExitValue):
			return b.presetHandle(spec, "dependency", fmt.Sprintf("dependency %s did not succeed (%s/%s)", a.ID, s.Outcome.Status, s.Outcome.ExitStatus)), nil
		case s.Phase == drms.Ended:
		default:
			keep = append(keep, a.ID)
		}
	}
	if len(keep) == len(ids) {
		return h, err
	}
	h, err = b.submit(ctx, spec, depArgs(keep))
	return withDeps(h, len(keep) > 0 && err == nil), err
}

// withDeps marks h as submitted with dependencies handed to Slurm (when on).
func withDeps(h drms.Handle, on bool) drms.Handle {
	if !on {
		return h
	}
	var st handleState
	if json.Unmarshal(h.State, &st) != nil {
		return h
	}
	st.Deps = true
	h.State, _ = json.Marshal(st)
	return h
}

// depArgs are the sbatch options that make a job wait for ids (none: no options).
func depArgs(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return []string{"--dependency=afterok:" + strings.Join(ids, ":"), "--kill-on-invalid-dep=yes"}
}

var _ drms.DependencySubmitter = (*Backend)(nil)

// decideGone decides about dependencies that Slurm no longer lists, from
// their outcomes (status files, accounting): one that did not succeed ends
// the dependant aborted_before_running at once (done, with a preset handle);
// those that succeeded are dropped from ids (left); one whose outcome is not
// known yet is an error (the engine tries again later).
func (b *Backend) decideGone(ctx context.Context, spec drms.JobSpec, gone []drms.Handle, ids []string) (drms.Handle, bool, []string, error) {
	st, err := b.Status(ctx, gone)
	if err != nil {
		return drms.Handle{}, false, nil, err
	}
	drop := map[string]bool{}
	for _, a := range gone {
		s := st[a.ID]
		switch {
		case s.Phase == drms.Ended && s.Outcome != nil && !model.Succeeded(s.Outcome.Status, s.Outcome.ExitStatus, s.Outcome.ExitValue):
			return b.presetHandle(spec, "dependency", fmt.Sprintf("dependency %s did not succeed (%s/%s)", a.ID, s.Outcome.Status, s.Outcome.ExitStatus)), true, nil, nil
		case s.Phase == drms.Ended:
			drop[a.ID] = true
		default:
			return drms.Handle{}, false, nil, fmt.Errorf("slurm: dependency %s of %s: Slurm no longer lists it and its outcome is not known yet", a.ID, spec.Name())
		}
	}
	var left []string
	for _, id := range ids {
		if !drop[id] {
			left = append(left, id)
		}
	}
	return drms.Handle{}, false, left, nil
}

// submitted records that this backend just submitted job (or array) id.
func (b *Backend) submitted(id string) { b.recent.Note(id) }

// unverified returns the ids of which it is not certain, without asking
// Slurm, that slurmctld still knows them: known are jobs this backend
// submitted less than MinJobAge/2 ago (a job is purged MinJobAge after it
// ended), and jobs in the last squeue listing when that listing is younger
// than MinJobAge/2 and the job had not ended, or ended less than MinJobAge/2
// before now. With MinJobAge unknown, nothing is certain.
func (b *Backend) unverified(ids []string) map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	now := time.Now()
	safe := b.minJobAge / 2
	for _, id := range ids {
		if safe > 0 {
			if t, ok := b.recent.At(arrayOf(id)); ok && now.Sub(t) < safe {
				continue
			}
			if t, ok := b.recent.At(id); ok && now.Sub(t) < safe {
				continue
			}
			if j, ok := b.lastQ[id]; ok && now.Sub(b.lastQAt) < safe {
				_, final := phaseOf(j.State, j.Reason)
				if !final || !j.End.IsZero() && now.Sub(j.End) < safe {
					continue
				}
			}
		}
		out[id] = true
	}
	return out
}
