#!/usr/bin/env bash
# Sharded feature extraction on Slurm: one array task per shard, then one job that ranks
# the union (exactly what one unsharded `snowscope rank DIR` gives).
#
#   sbatch --array=1-8 examples/slurm_shards.sh /data/images /scratch/parts
#   sbatch --dependency=afterok:<array job id> --wrap \
#       "snowscope rank --features /scratch/parts/part_*.npy --format csv --top 0 --output ranking.csv"
#
# Each task extracts a stable, disjoint 1/N of the folder (by a hash of each relative
# path), so tasks need no coordination; a failed task can simply be rerun. Parts from
# different models, layers or folders, a missing or repeated shard, or a damaged part are
# refused by `rank --features`, never united.
#SBATCH --job-name=snowscope-features
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=02:00:00
set -euo pipefail
images=$1
parts=$2
mkdir -p "$parts"
index=${SLURM_ARRAY_TASK_ID:?run with sbatch --array=1-N}
count=${SLURM_ARRAY_TASK_COUNT:?run with sbatch --array=1-N}
# Exit 3 means "done, some files skipped" (listed in the part's .shard.json): not a failure.
snowscope features "$images" --shard "$index/$count" --out "$parts/part_$index.npy" \
    --threads "${SLURM_CPUS_PER_TASK:-4}" || [ $? -eq 3 ]
