#!/usr/bin/env bash
# check_sbatch.sh SOURCE_DIR MPIRUN WORKDIR: the Slurm template is valid bash, asks for one task per
# GPU, and its srun line (PMIx, kill on a bad exit, `ftdist train --config run.toml`) trains: a stand-in
# `srun` checks the options Slurm would get and starts the same command under mpirun with 2 ranks.
set -euo pipefail
src=$1 mpirun_wrapper=$2 work=$3
tmpl="$src/launch/ftdist.sbatch"
bash -n "$tmpl" || { echo "FAIL: $tmpl is not valid bash"; exit 1; }
tasks=$(sed -n 's/^#SBATCH --ntasks-per-node=\([0-9]*\).*/\1/p' "$tmpl")
gpus=$(sed -n 's/^#SBATCH --gpus-per-node=\([0-9]*\).*/\1/p' "$tmpl")
[ -n "$tasks" ] && [ "$tasks" = "$gpus" ] || { echo "FAIL: --ntasks-per-node ($tasks) must equal --gpus-per-node ($gpus)"; exit 1; }

rm -rf "$work" && mkdir -p "$work/bin"
ln -s "$src/build" "$work/build"
sed -e "s|\"examples/|\"$src/examples/|" -e "s|^steps = .*|steps = 5|" -e "s|^warmup_steps = .*|warmup_steps = 2|" \
    -e "s|^dir = .*|dir = \"$work/out\"|" "$src/examples/tiny/ftdist.toml" > "$work/run.toml"
cat > "$work/bin/srun" <<SRUN
#!/usr/bin/env bash
# stand-in for Slurm's srun: the options the template must pass, then the task command under mpirun
echo "srun \$*" > "$work/srun-args"
[ "\$1" = "--mpi=pmix" ] || { echo "srun: expected --mpi=pmix first, got \$1" >&2; exit 9; }
[ "\$2" = "--kill-on-bad-exit=1" ] || { echo "srun: expected --kill-on-bad-exit=1, got \$2" >&2; exit 9; }
shift 2
exec "$mpirun_wrapper" -np 2 "\$@"
SRUN
chmod +x "$work/bin/srun"
cd "$work"
out=$(PATH="$work/bin:$PATH" SLURM_CPUS_PER_TASK=1 bash "$tmpl" 2>&1) || { echo "$out"; echo "FAIL: the template exited $?"; exit 1; }
echo "$out" | tail -n 3
grep -q "build/ftdist train --config run.toml" "$work/srun-args" || { cat "$work/srun-args"; echo "FAIL: srun did not start ftdist train"; exit 1; }
echo "$out" | grep -q "trained 5 steps" || { echo "FAIL: no finished training"; exit 1; }
[ -s "$work/out/metrics.jsonl" ] || { echo "FAIL: no metrics"; exit 1; }
echo PASS
