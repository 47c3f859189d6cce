// Package proc starts, watches and reaps the processes of local jobs: what
// every runner of a job on this machine shares (the local backend of `run`,
// the supervisor of drms/supervisor, and exec-job under a batch system).
// It starts a job the same way everywhere (argv looked up on the job's own
// PATH, working directory, environment, stdin/stdout/stderr files, lazily
// created logs, its own process group and, where cgroups v2 are writable,
// its own cgroup), turns a wait status and rusage into an Outcome the same
// way, and finds and kills what a job left behind.
package proc
