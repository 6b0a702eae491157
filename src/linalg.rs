//! A safe wrapper over the `gemm` crate's f32 matrix product (the kernel candle itself uses),
//! and the small numeric helpers the ranking stages share.

/// Layout of the right-hand matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rhs {
    /// `k x n`, row-major.
    Plain,
    /// `n x k`, row-major (so the product is `lhs . rhs^T`).
    Transposed,
}

/// `dst = [dst +] lhs . rhs` with `dst` `m x n` and `lhs` `m x k`, all row-major.
/// With `accumulate`, `dst`'s current values are added (a fused bias or residual).
/// `threads` > 1 splits the product over the current rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    rhs_layout: Rhs,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(dst.len(), m * n, "dst is m x n");
    assert_eq!(lhs.len(), m * k, "lhs is m x k");
    assert_eq!(rhs.len(), k * n, "rhs holds k x n values");
    if m == 0 || n == 0 {
        return;
    }
    let (rhs_cs, rhs_rs) = match rhs_layout {
        Rhs::Plain => (1, n as isize),
        Rhs::Transposed => (k as isize, 1),
    };
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee that every index gemm touches, given these
    // dimensions and strides, lies inside the three slices; `dst` is uniquely borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// L2-normalises each row in place (zero rows stay zero).
pub fn normalise_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// Quantile with linear interpolation between order statistics (numpy's default method).
pub fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = (pos - lo as f64) as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// `quantile(sorted, 0.5)` of `values` unsorted, found by selection (reorders `values`):
/// the same value in linear time (a million-row folder's trait statistics sort dozens of
/// columns otherwise).
pub fn median(values: &mut [f32]) -> f32 {
    let pos = 0.5 * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (_, &mut low, above) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let high = match hi > lo {
        true => above
            .iter()
            .copied()
            .min_by(f32::total_cmp)
            .expect("hi < len"),
        false => low,
    };
    low + (high - low) * (pos - lo as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_selection_is_the_sorted_quantile() {
        let mut rng = crate::rng::Rng::derive(3, 4);
        for n in [1, 2, 3, 10, 11, 1000] {
            let mut values: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
            values[0] = -0.0;
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(
                median(&mut values).to_bits(),
                quantile(&sorted, 0.5).to_bits()
            );
        }
    }

    #[test]
    fn small_products_by_hand() {
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        let rhs = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3 x 2
        let mut dst = [10.0; 4];
        matmul(&mut dst, &lhs, &rhs, Rhs::Plain, 2, 2, 3, true, 1);
        assert_eq!(dst, [14.0, 15.0, 20.0, 21.0]);
        let rhs_t = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // the same matrix, transposed
        matmul(&mut dst, &lhs, &rhs_t, Rhs::Transposed, 2, 2, 3, false, 2);
        assert_eq!(dst, [4.0, 5.0, 10.0, 11.0]);
    }
}
