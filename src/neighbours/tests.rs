use super::*;

/// Uniform values in [0, 1) from SplitMix64: deterministic data without a dependency.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..len).map(|_| rng.f32()).collect()
}

fn reference_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum()
}

/// O(n^2 d) search in f64: (distance, row) lists, nearest first, ties by lower row.
fn brute_force(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Vec<Vec<(f64, usize)>> {
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    (0..groups.len())
        .map(|i| {
            let mut all: Vec<(f64, usize)> = (0..groups.len())
                .filter(|&j| groups[j] != groups[i])
                .map(|j| (reference_distance(row(i), row(j)), j))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            all.truncate(k);
            all
        })
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() <= 1e-12
}

/// Checks `knn` against the brute force: same counts, distances within 1e-4 relative,
/// and the same rows except between distances equal within 1e-5 relative.
fn check(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
    let got = knn(data, dim, k, groups);
    assert_eq!(got.index.len(), groups.len() * k);
    assert_eq!(got.dist2.len(), groups.len() * k);
    let want = brute_force(data, dim, k, groups);
    for (i, want) in want.iter().enumerate() {
        let row: Vec<(usize, f32)> = got.row(i).collect();
        assert_eq!(row.len(), want.len(), "row {i}: neighbour count");
        for (s, (&(j, d), &(wd, wj))) in row.iter().zip(want).enumerate() {
            assert!(close(f64::from(d), wd, 1e-4), "row {i}[{s}]: {d} vs {wd}");
            if j != wj {
                let dj = reference_distance(
                    &data[i * dim..(i + 1) * dim],
                    &data[j * dim..(j + 1) * dim],
                );
                assert!(
                    close(dj, wd, 1e-5) && groups[j] != groups[i],
                    "row {i}[{s}]: row {j} ({dj}) instead of {wj} ({wd})"
                );
            }
        }
        for s in row.len()..k {
            assert_eq!(got.index[i * k + s], u32::MAX);
            assert_eq!(got.dist2[i * k + s], f32::INFINITY);
        }
    }
    got
}

fn ungrouped(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

#[test]
fn matches_brute_force_on_random_data() {
    for (n, dim, k) in [
        (0, 4, 3),
        (1, 4, 3),
        (2, 4, 3),
        (3, 4, 3),
        (2, 1, 1),
        (3, 1, 5),
        (200, 1, 3),
        (37, 7, 4),
        (1037, 7, 3),
        (600, 64, 3),
        (513, 64, 1),
        (45, 1280, 3),
    ] {
        let data = random(n * dim, (n * 1000 + dim) as u64);
        check(&data, dim, k, &ungrouped(n));
    }
}

#[test]
fn more_neighbours_asked_than_rows() {
    let data = random(4 * 7, 9);
    let got = check(&data, 7, 6, &ungrouped(4));
    assert!((0..4).all(|i| got.row(i).count() == 3));
    assert_eq!(got.len(), 4);
}

#[test]
fn exact_duplicates_are_at_distance_zero_unless_grouped() {
    // Rows 0, 300, 301 are copies (far from the origin, where cancellation is worst),
    // and 5, 302 too, across tiles.
    let dim = 64;
    let mut data: Vec<f32> = random(300 * dim, 4).iter().map(|v| v + 10.0).collect();
    let copy = |data: &mut Vec<f32>, i: usize| {
        let row = data[i * dim..(i + 1) * dim].to_vec();
        data.extend_from_slice(&row);
    };
    copy(&mut data, 0);
    copy(&mut data, 0);
    copy(&mut data, 5);
    let got = check(&data, dim, 3, &ungrouped(303));
    assert_eq!(
        got.row(0).take(2).collect::<Vec<_>>(),
        [(300, 0.0), (301, 0.0)]
    );
    assert_eq!(got.row(302).next(), Some((5, 0.0)));
    // Grouped, the copies never see each other: they share the nearest other row.
    let mut groups = ungrouped(303);
    groups[300..].copy_from_slice(&[0, 0, 5]);
    let grouped = check(&data, dim, 3, &groups);
    let nearest = brute_force(&data[..300 * dim], dim, 2, &ungrouped(300))[0][0].1;
    for i in [0, 300, 301] {
        let (j, d) = grouped.row(i).next().unwrap();
        assert_eq!(j, nearest);
        assert!(d > 0.0);
    }
    assert!(grouped.row(302).all(|(j, _)| j != 5));
}

#[test]
fn ties_go_to_the_lower_index() {
    // A 6 x 5 grid has many equal distances; then copies of rows 0 and 5, grouped.
    let mut data: Vec<f32> = (0..30)
        .flat_map(|i| [(i % 6) as f32, (i / 6) as f32])
        .collect();
    data.extend_from_slice(&[0.0, 0.0, 0.0, 0.0, 5.0, 0.0]);
    let mut groups = ungrouped(30);
    groups.extend_from_slice(&[0, 0, 5]);
    let got = check(&data, 2, 4, &groups);
    // Row 7 = (1, 1): four rows at distance 1, then the four diagonals at 2.
    assert_eq!(
        got.row(7).collect::<Vec<_>>(),
        [(1, 1.0), (6, 1.0), (8, 1.0), (13, 1.0)]
    );
    for i in [0, 30, 31] {
        assert_eq!(got.row(i).take(2).collect::<Vec<_>>(), [(1, 1.0), (6, 1.0)]);
    }
}

#[test]
fn all_in_one_group_or_one_row_have_no_neighbours() {
    assert_eq!(knn(&[], 3, 2, &[]).len(), 0);
    assert!(knn(&[], 3, 2, &[]).is_empty());
    let one = knn(&[1.0, 2.0], 2, 3, &[0]);
    assert_eq!((one.row(0).count(), one.len()), (0, 1));
    let same = knn(&[1.0, 2.0, 1.0, 2.0], 2, 1, &[7, 7]);
    assert_eq!(same.row(0).count() + same.row(1).count(), 0);
    assert_eq!(same.len(), 2);
    assert_eq!(knn(&[1.0, 2.0], 1, 0, &[0, 1]).index.len(), 0);
}

#[test]
fn zero_dimensions_are_all_at_distance_zero() {
    let got = knn(&[], 0, 2, &[0, 1, 1, 2]);
    assert_eq!(got.row(1).collect::<Vec<_>>(), [(0, 0.0), (3, 0.0)]);
}

#[test]
fn lists_do_not_depend_on_the_thread_count() {
    let data = random(1100 * 16, 7);
    let groups: Vec<u32> = (0..1100).map(|i| i / 3).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let single = pool.install(|| knn(&data, 16, 3, &groups));
    assert_eq!(single, knn(&data, 16, 3, &groups));
}

#[test]
fn cached_lists_are_reused_and_stale_ones_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.knn");
    let data = random(50 * 8, 3);
    let groups = ungrouped(50);
    let fresh = knn_cached(&data, 8, 3, &groups, Some(&path));
    assert_eq!(fresh, knn(&data, 8, 3, &groups));
    assert_eq!(knn_cached(&data, 8, 3, &groups, Some(&path)), fresh);
    // Changed data: the key differs and the lists are recomputed.
    let mut moved = data.clone();
    moved[0] += 10.0;
    assert_eq!(
        knn_cached(&moved, 8, 3, &groups, Some(&path)),
        knn(&moved, 8, 3, &groups)
    );
    // A damaged file is ignored.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        knn_cached(&moved, 8, 3, &groups, Some(&path)),
        knn(&moved, 8, 3, &groups)
    );
}

/// Options that send even small sets to the index (`n` rows, `sample` each way).
fn index_options(sample: usize) -> SearchOptions {
    SearchOptions {
        index_from: 0,
        sample,
        ..SearchOptions::default()
    }
}

/// Share of rows whose closest match from `got` equals the exact one (same row or same
/// exact distance).
fn agreement_with(exact: &Neighbours, got: &Neighbours) -> f64 {
    let n = exact.len();
    let equal = (0..n)
        .filter(|&i| match (exact.row(i).next(), got.row(i).next()) {
            (Some((j, dj)), Some((g, dg))) => j == g || dj == dg,
            (None, None) => true,
            _ => false,
        })
        .count();
    equal as f64 / n as f64
}

#[test]
fn the_index_finds_the_exact_closest_match_for_99_percent_of_clustered_rows() {
    let (n, dim) = (6000, 32);
    let data = crate::rng::Clustered::new(dim, 60, 11).rows(n);
    let groups = ungrouped(n);
    let (got, report) = search(&data, dim, 3, &groups, &index_options(400));
    let SearchReport::Ivf {
        lists,
        probes,
        recall_sampled,
        sample,
        calibration_sample,
        exact_rows,
        ..
    } = report
    else {
        panic!("expected the index, got {report:?}");
    };
    assert!(probes < lists / 2, "{probes} of {lists} lists");
    assert!(recall_sampled >= 0.99, "{recall_sampled}");
    assert_eq!((sample, calibration_sample), (400, 400));
    assert_eq!(exact_rows, 300);
    // Not only on the sample: over every row.
    let exact = knn(&data, dim, 3, &groups);
    let all = agreement_with(&exact, &got);
    assert!(all >= 0.99, "closest match equal for {all} of the rows");
    // Whatever the index found, its distances are exact ones, in order.
    for i in 0..n {
        let row: Vec<(usize, f32)> = got.row(i).collect();
        assert_eq!(row.len(), 3);
        assert!(row.windows(2).all(|w| w[0].1 <= w[1].1));
        for &(j, d) in &row {
            let want = exact_distance(&data[i * dim..(i + 1) * dim], &data[j * dim..(j + 1) * dim]);
            assert_eq!(d, want);
        }
    }
}

#[test]
fn the_index_excludes_duplicate_groups_like_the_exact_search() {
    let (n, dim) = (4000, 16);
    let mut data = crate::rng::Clustered::new(dim, 40, 5).rows(n);
    // Rows 1..=3 copy row 0 and row 11 copies row 10: two groups, across lists or not.
    let mut groups = ungrouped(n);
    for (copy, of) in [(1, 0), (2, 0), (3, 0), (11, 10)] {
        let row = data[of * dim..(of + 1) * dim].to_vec();
        data[copy * dim..(copy + 1) * dim].copy_from_slice(&row);
        groups[copy] = of as u32;
    }
    let (got, report) = search(&data, dim, 2, &groups, &index_options(300));
    assert!(matches!(report, SearchReport::Ivf { .. }), "{report:?}");
    for i in 0..n {
        assert!(
            got.row(i).all(|(j, _)| groups[j] != groups[i]),
            "row {i} paired with its own group"
        );
    }
    // The copies share their closest match, at a distance above zero.
    let first = got.row(0).next().unwrap();
    assert!(first.1 > 0.0);
    for copy in 1..=3 {
        assert_eq!(got.row(copy).next(), Some(first));
    }
}

#[test]
fn small_sets_and_exact_requests_get_the_exact_search() {
    let data = random(600 * 8, 21);
    let groups = ungrouped(600);
    let exact = knn(&data, 8, 3, &groups);
    let (small, report) = search(&data, 8, 3, &groups, &SearchOptions::default());
    assert_eq!(small, exact);
    assert!(matches!(&report, SearchReport::Exact { why } if why.contains("below")));
    let forced = SearchOptions {
        exact: true,
        ..index_options(100)
    };
    let (got, report) = search(&data, 8, 3, &groups, &forced);
    assert_eq!(got, exact);
    assert!(matches!(&report, SearchReport::Exact { why } if why.contains("--exact")));
}

#[test]
fn the_index_gives_way_to_the_exact_search_where_it_cannot_reach_the_recall() {
    // Uniform 64-d noise has no clusters: the closest match could be in any list.
    let data = random(3000 * 64, 8);
    let groups = ungrouped(3000);
    let (got, report) = search(&data, 64, 2, &groups, &index_options(200));
    assert!(matches!(&report, SearchReport::Exact { why } if why.contains("half")));
    assert_eq!(got, knn(&data, 64, 2, &groups));
}

#[test]
fn index_lists_do_not_depend_on_the_thread_count() {
    let data = crate::rng::Clustered::new(16, 30, 3).rows(3000);
    let groups: Vec<u32> = (0..3000).map(|i| i / 2).collect();
    let opts = index_options(200);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let single = pool.install(|| search(&data, 16, 3, &groups, &opts));
    assert!(matches!(single.1, SearchReport::Ivf { .. }));
    assert_eq!(single, search(&data, 16, 3, &groups, &opts));
}

#[test]
fn cached_lists_remember_their_method() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.knn");
    let data = crate::rng::Clustered::new(16, 30, 4).rows(3000);
    let groups = ungrouped(3000);
    let index = index_options(200);
    let exact = SearchOptions {
        exact: true,
        ..index.clone()
    };
    let cached = |opts: &SearchOptions| {
        search_cached(
            &data,
            16,
            3,
            &groups,
            Some(ListCache {
                path: &path,
                rows: None,
            }),
            opts,
        )
        .expect("no row blocks")
    };
    let by_index = cached(&index);
    assert!(matches!(by_index.1, SearchReport::Ivf { .. }));
    // The exact run never reads the index's lists, and the index's run comes back with its
    // own lists and report.
    let exactly = cached(&exact);
    assert_eq!(exactly.0, knn(&data, 16, 3, &groups));
    assert!(matches!(exactly.1, SearchReport::Exact { .. }));
    assert_eq!(cached(&exact), exactly);
    assert_eq!(cached(&index), by_index);
    assert_eq!(knn_cached(&data, 16, 3, &groups, Some(&path)), exactly.0);
}

/// Writes blocks `1..=count` of the exact search into `dir`, named `b{tag}_{I}`.
fn write_blocks(
    dir: &Path,
    tag: &str,
    (data, dim, k, groups): (&[f32], usize, usize, &[u32]),
    count: usize,
) -> Vec<PathBuf> {
    (1..=count)
        .map(|index| {
            let path = dir.join(format!("b{tag}_{index}"));
            let part = crate::scan::Shard { index, count };
            search_block(data, dim, k, groups, part, &path).unwrap();
            path
        })
        .collect()
}

fn merged(
    data: &[f32],
    dim: usize,
    k: usize,
    groups: &[u32],
    paths: &[PathBuf],
) -> Result<Neighbours, BlockError> {
    let opts = SearchOptions {
        blocks: paths.to_vec(),
        ..SearchOptions::default()
    };
    search_cached(data, dim, k, groups, None, &opts).map(|(found, report)| {
        assert!(matches!(report, SearchReport::Exact { .. }));
        found
    })
}

#[test]
fn row_blocks_merge_into_the_exact_lists_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // Three tiles (six tile pairs), duplicates included.
    let (n, dim, k) = (1300, 12, 3);
    let mut data = random(n * dim, 8);
    data.copy_within(0..dim, 700 * dim);
    let mut groups = ungrouped(n);
    groups[700] = 0;
    let exact = knn(&data, dim, k, &groups);
    // More blocks than tile pairs leaves some empty, which must still merge.
    for count in [1, 2, 4, 7] {
        let paths = write_blocks(
            dir.path(),
            &count.to_string(),
            (&data, dim, k, &groups),
            count,
        );
        let mut backwards = paths.clone();
        backwards.reverse();
        assert_eq!(
            merged(&data, dim, k, &groups, &backwards).unwrap(),
            exact,
            "{count} blocks"
        );
    }
}

#[test]
fn row_blocks_that_do_not_make_up_the_search_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim, k) = (600, 8, 3);
    let data = random(n * dim, 9);
    let groups = ungrouped(n);
    let paths = write_blocks(dir.path(), "a", (&data, dim, k, &groups), 3);
    let refused = |paths: &[PathBuf], data: &[f32], k: usize, words: &str| {
        let err = merged(data, dim, k, &groups, paths)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "want {words:?} in {err:?}");
    };
    refused(&paths[..2], &data, k, "block 3/3 missing");
    refused(
        &[&paths[..], &paths[1..2]].concat(),
        &data,
        k,
        "given twice",
    );
    refused(&paths, &data, 5, "needs 5");
    let mut moved = data.clone();
    moved[17] += 1.0;
    refused(&paths, &moved, k, "other feature values");
    let other = write_blocks(dir.path(), "b", (&data, dim, k, &groups), 2);
    refused(&[paths[0].clone(), other[1].clone()], &data, k, "is of 3");
    let cut = dir.path().join("cut");
    let bytes = std::fs::read(&paths[1]).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    refused(
        &[paths[0].clone(), cut, paths[2].clone()],
        &data,
        k,
        "truncated",
    );
    refused(&[dir.path().join("nowhere")], &data, k, "cannot read");
}
