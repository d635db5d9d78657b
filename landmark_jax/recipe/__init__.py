"""`landmark-jax recipe`: the paper's whole recipe on GLDv2-layout data, on one machine or
many, as one resumable sequence of `landmark-jax` commands.

split → train → embed → clean → train again on the cleaned photos → embed → clean → index
(search tuned for a target recall) → calibrate η → evaluate → export a bundle. Every step
is a child process typed as a user would type it; a step whose output is complete is
skipped, so a killed or preempted run resumes by running the same command again.

The same command runs on every process (`srun`, `gcloud … --worker=all`): `train` and
`embed` run on all of them, joined by the library's own SLURM / Open MPI detection or by the
explicit flags; the one-process steps run on process 0 while the others wait for their
output. docs/recipe.md says how to use it; docs/decisions.md ("The recipe on a cluster")
why it is built this way.
"""
