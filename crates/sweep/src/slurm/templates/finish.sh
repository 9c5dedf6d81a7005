#!/usr/bin/env bash
{{sbatch_directives}}
# Written by `forgetlab sweep run --executor slurm`: runs after the array (afterany),
# evaluates completed runs that have no verdict, fits the laws, writes the report.
set -u
{{setup}}
exec {{forgetlab}} --threads "${SLURM_CPUS_PER_TASK:-1}" sweep finish {{experiment_dir}}{{only}}
