#!/usr/bin/env bash
# The exact neighbour search spread over a Slurm job array: task I of N compares its
# share of all pairs of images (`rank --rows I/N`) and writes partial neighbour lists; one
# last job merges them (`rank --neighbours`) into exactly the lists, and the ranking, of
# the exact search on one machine (`rank --exact`).
#
#   sbatch --array=1-8 examples/slurm_rows.sh "/scratch/parts/part_*.npy" /scratch/blocks
#   sbatch --dependency=afterok:<array job id> --wrap \
#       "snowscope rank --features /scratch/parts/part_*.npy \
#            --neighbours /scratch/blocks/block_*.knn --format csv --top 0 --output ranking.csv"
#
# The features are the parts of `features --shard` (examples/slurm_shards.sh), or one
# .npy with --paths, or a folder whose features are cached; every task reads all of them
# (n x d floats in memory) and compares 1/N of the n^2/2 pairs. Ranking settings that
# change the searched rows (--profile, --k, --no-normalise) must be the same in every task
# and in the merge: blocks made otherwise are refused, as are missing, repeated or
# damaged blocks.
#SBATCH --job-name=snowscope-rows
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
set -euo pipefail
features=$1
blocks=$2
mkdir -p "$blocks"
index=${SLURM_ARRAY_TASK_ID:?run with sbatch --array=1-N}
count=${SLURM_ARRAY_TASK_COUNT:?run with sbatch --array=1-N}
# $features is a glob, expanded here on purpose. Exit 3: the parts skipped some files.
# shellcheck disable=SC2086
snowscope rank --features $features --rows "$index/$count" \
    --output "$blocks/block_$index.knn" --threads "${SLURM_CPUS_PER_TASK:-4}" || [ $? -eq 3 ]
