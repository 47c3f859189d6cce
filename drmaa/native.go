package drmaa

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// handleState is the backend-private part of a handle (drms.Handle.State).
type handleState struct {
	// Name is the DRMS job name (drms.JobSpec.Name): job ids restart from 1
	// on a fresh Grid Engine cell, the name tells two jobs apart.
	Name string `json:"name"`
	// Status is the attempt's exec-job status file.
	Status string `json:"status"`
	// Contact is the DRMAA session contact the job was submitted in.
	Contact   string    `json:"contact,omitempty"`
	Submitted time.Time `json:"submitted"`
}

func encodeHandle(id string, st handleState) drms.Handle {
	b, _ := json.Marshal(st) // cannot fail: strings and a time
	return drms.Handle{Version: HandleVersion, ID: id, State: b}
}

func decodeHandle(h drms.Handle) (handleState, error) {
	var st handleState
	if h.Version != HandleVersion {
		return st, fmt.Errorf("drmaa: handle %q has version %d, this build reads version %d", h.ID, h.Version, HandleVersion)
	}
	if h.ID == "" {
		return st, fmt.Errorf("drmaa: handle without a job id")
	}
	if err := json.Unmarshal(h.State, &st); err != nil {
		return st, fmt.Errorf("drmaa: handle %q: bad state: %w", h.ID, err)
	}
	if st.Status == "" || st.Name == "" {
		return st, fmt.Errorf("drmaa: handle %q: state lacks the job name or status file", h.ID)
	}
	return st, nil
}

// options are the backend's settings (drms.Config.Settings), parsed.
type options struct {
	queueOption    string
	parallelOption string
	native         []string
	// resource templates (see SettingCPUsOption)
	cpusOption, memoryOption, walltimeOption, gpusOption string
	accounting                                           *bool // nil: use qacct when it is on PATH
	// forgetGrace is how long a job may be unknown to DRMAA and to the
	// accounting before it ends without a record (accounting is written
	// with a delay: Grid Engine's reporting flush_time, 15 s by default).
	forgetGrace time.Duration
	// psInterval is how long a job's drmaa_job_ps answer is used before
	// the DRMS is asked again (0: at every poll).
	psInterval time.Duration
}

// Setting keys beyond those in doc.go.
const (
	// SettingForgetGrace is how long (a Go duration, default 2m) a job may
	// be unknown to both DRMAA and qacct before it ends without a record.
	SettingForgetGrace = "forget_grace"
	// SettingCPUsOption, SettingMemoryOption, SettingWalltimeOption and
	// SettingGPUsOption are the native templates of a job's resources
	// ({cpus}, {mb}, {seconds}, {gpus}); Grid Engine's defaults for memory
	// and walltime, none for CPUs and GPUs (a site's parallel environment
	// or complex): a job asking for one without a template is refused.
	SettingCPUsOption     = "cpus_option"
	SettingMemoryOption   = "memory_option"
	SettingWalltimeOption = "walltime_option"
	SettingGPUsOption     = "gpus_option"
	// SettingPsInterval is how often (a Go duration, default 30s; 0: at
	// every poll) a job's state is asked of the DRMS with drmaa_job_ps, one
	// request to the scheduler per job. A job's end is known sooner than
	// that: from drmaa_wait for the jobs of this session, from exec-job's
	// status file for the others; its start from exec-job's started file.
	SettingPsInterval = "ps_interval"
)

func parseOptions(s map[string]string) (options, error) {
	o := options{queueOption: "-q", parallelOption: "-pe {config} {slots}", forgetGrace: 2 * time.Minute, psInterval: 30 * time.Second,
		memoryOption: "-l h_vmem={mb}M", walltimeOption: "-l h_rt={seconds}"}
	for k, v := range s {
		switch k {
		case SettingQueueOption:
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n") {
				return o, fmt.Errorf("drmaa: setting %s=%q: want one option such as -q or -p", k, v)
			}
			o.queueOption = v
		case SettingParallelOption:
			if strings.TrimSpace(v) == "" {
				return o, fmt.Errorf("drmaa: setting %s is empty", k)
			}
			o.parallelOption = v
		case SettingNative:
			o.native = strings.Fields(v)
		case SettingCPUsOption:
			o.cpusOption = v
		case SettingMemoryOption:
			o.memoryOption = v
		case SettingWalltimeOption:
			o.walltimeOption = v
		case SettingGPUsOption:
			o.gpusOption = v
		case SettingAccounting:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("drmaa: setting %s=%q: want true or false", k, v)
			}
			o.accounting = &b
		case SettingForgetGrace:
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return o, fmt.Errorf("drmaa: setting %s=%q: want a duration such as 2m", k, v)
			}
			o.forgetGrace = d
		case SettingPsInterval:
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return o, fmt.Errorf("drmaa: setting %s=%q: want a duration such as 30s (0s: ask at every poll)", k, v)
			}
			o.psInterval = d
		}
	}
	return o, nil
}

// nativeSpec is the DRMAA native specification for spec: the site's
// setting, the queue ("-q QUEUE" on Grid Engine), the parallel request, then
// the job's own native specification, joined by spaces (DRMAA takes one
// string, which the library splits on white space like a qsub command line).
func (o options) nativeSpec(spec drms.JobSpec) (string, error) {
	parts := append([]string(nil), o.native...)
	if spec.Queue != "" {
		if strings.ContainsAny(spec.Queue, " \t\n\"'") {
			return "", &drms.StartError{Reason: fmt.Sprintf("drmaa: queue %q contains white space or quotes", spec.Queue)}
		}
		parts = append(parts, o.queueOption, spec.Queue)
	}
	if p := spec.Parallel; p != nil {
		if p.NodesNumber < 1 || p.CPUPerNode < 1 {
			return "", &drms.StartError{Reason: fmt.Sprintf("drmaa: parallel job %s: nodes (%d) and cpus per node (%d) must be at least 1", spec.Name(), p.NodesNumber, p.CPUPerNode)}
		}
		if strings.Contains(o.parallelOption, "{config}") && p.ConfigName == "" {
			return "", &drms.StartError{Reason: fmt.Sprintf("drmaa: parallel job %s needs a parallel configuration name (the parallel environment)", spec.Name())}
		}
		r := strings.NewReplacer("{config}", p.ConfigName, "{nodes}", strconv.Itoa(p.NodesNumber),
			"{cpus}", strconv.Itoa(p.CPUPerNode), "{slots}", strconv.Itoa(p.NodesNumber*p.CPUPerNode))
		parts = append(parts, r.Replace(o.parallelOption))
	}
	r := spec.Resources
	for _, res := range []struct {
		name, template, key string
		value               int64
	}{{"cpus", o.cpusOption, "{cpus}", int64(r.CPUs)}, {"memory", o.memoryOption, "{mb}", r.MemoryMB},
		{"walltime", o.walltimeOption, "{seconds}", r.Walltime}, {"gpus", o.gpusOption, "{gpus}", int64(r.GPUs)}} {
		if res.value <= 0 {
			continue
		}
		if strings.TrimSpace(res.template) == "" {
			return "", &drms.StartError{Reason: fmt.Sprintf("the job asks for %s, but the drmaa backend has no %s_option setting to ask the DRMS for it", res.name, res.name)}
		}
		parts = append(parts, strings.ReplaceAll(res.template, res.key, strconv.FormatInt(res.value, 10)))
	}
	for _, n := range spec.NativeSpec {
		if strings.TrimSpace(n) == "" {
			continue
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, " "), nil
}
