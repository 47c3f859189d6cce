package pbs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// SubmitAfter implements drms.DependencySubmitter (setting
// dependencies=true): a qsub with -W depend=afterok:ID:ID..., so that PBS
// starts the job once every job of after exited 0. A PBS server deletes
// such a job when a dependency fails ("Job deleted as result of dependency
// on job ..."); it then never started, and Status reports it
// aborted_before_running. (Slurm's Torque wrappers leave it queued instead;
// the engine then deletes it itself, as it does every early-submitted job
// whose dependency did not succeed.) A dependency that never reached PBS
// (an earlier refused SubmitAfter) gives a handle whose Status is at once
// aborted_before_running; nothing is submitted.
func (b *Backend) SubmitAfter(ctx context.Context, spec drms.JobSpec, after []drms.Handle) (drms.Handle, error) {
	if !b.deps {
		return drms.Handle{}, errors.New("pbs: dependencies are off (setting dependencies=true turns them on)")
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
			return drms.Handle{}, fmt.Errorf("pbs: dependency %q is not a PBS job id", a.ID)
		}
		ids = append(ids, a.ID)
	}
	var extra []string
	if len(ids) > 0 {
		extra = []string{"-W", "depend=afterok:" + strings.Join(ids, ":")}
	}
	h, err := b.submit(ctx, spec, extra)
	var se *drms.StartError
	if len(ids) > 0 && errors.As(err, &se) && (strings.Contains(strings.ToLower(se.Reason), "unknown job") || strings.Contains(strings.ToLower(se.Reason), "depend")) {
		// PBS refused the dependency list: a dependency it already forgot
		// (finished, no history). Their outcomes decide: one that did not
		// succeed ends this job unsubmitted, the others are dropped.
		states, serr := b.Status(ctx, after)
		if serr != nil {
			return drms.Handle{}, err
		}
		var left []string
		for _, a := range after {
			s := states[a.ID]
			if s.Phase != drms.Ended {
				left = append(left, a.ID)
				continue
			}
			if o := s.Outcome; o == nil || !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
				return b.presetHandle(spec, "dependency", fmt.Sprintf("dependency %s did not succeed", a.ID)), nil
			}
		}
		if len(left) == len(ids) {
			return h, err
		}
		return b.SubmitAfter(ctx, spec, keep(after, left))
	}
	if err != nil || len(ids) == 0 {
		return h, err
	}
	var st handleState
	if json.Unmarshal(h.State, &st) == nil {
		st.Deps = true
		h.State, _ = json.Marshal(st)
	}
	return h, nil
}

// keep returns the handles of hs whose ids are in ids.
func keep(hs []drms.Handle, ids []string) []drms.Handle {
	var out []drms.Handle
	for _, h := range hs {
		for _, id := range ids {
			if h.ID == id {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// presetHandle is the handle of an attempt that was not submitted and whose
// outcome is known: kind "dependency" (a dependency had already failed:
// aborted_before_running) or "refused" (qsub refused its array: failed /
// aborted with reason). Status ends it at once; Kill does nothing.
func (b *Backend) presetHandle(spec drms.JobSpec, kind, reason string) drms.Handle {
	h := b.handle(kind+"-"+spec.Name(), spec)
	var st handleState
	_ = json.Unmarshal(h.State, &st)
	st.Ended, st.Reason = kind, reason
	h.State, _ = json.Marshal(st)
	return h
}

var _ drms.DependencySubmitter = (*Backend)(nil)
