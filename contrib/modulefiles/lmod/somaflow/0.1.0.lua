-- somaflow modulefile for Lmod. Copy to <MODULEPATH>/somaflow/<version>.lua
-- and set `prefix` to where somaflow is installed (bin/somaflow under it).
local prefix = "/opt/somaflow/0.1.0"

help([[
somaflow runs workflows of command-line jobs on Slurm, PBS, DRMAA systems or local
processes, and keeps their state in a per-user database.

  somaflow submit wf.json     submit; the engine runs in the background
  somaflow status ID          every job's status; --json for scripts
  somaflow wait ID            exit 0 when every job succeeded

The site configuration is $SOMAFLOW_CONFIG (backend, queue, spool dir).
]])

whatis("Name: somaflow")
whatis("Version: 0.1.0")
whatis("Description: workflow engine for HPC batch systems (soma-workflow compatible)")
whatis("URL: https://github.com/somaflow/somaflow")

family("somaflow")
prepend_path("PATH", pathJoin(prefix, "bin"))
prepend_path("MANPATH", pathJoin(prefix, "share", "man"))
setenv("SOMAFLOW_HOME", prefix)
-- The site's configuration: default backend (e.g. slurm), queue, spool dir;
-- only when the site wrote one (somaflow refuses a SOMAFLOW_CONFIG that
-- does not exist, and loading the module must never break it).
local config = pathJoin(prefix, "etc", "somaflow.yaml")
if isFile(config) then
    setenv("SOMAFLOW_CONFIG", config)
end
