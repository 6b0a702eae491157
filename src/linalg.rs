//! A safe wrapper over the `gemm` crate's f32 matrix product (the kernel candle itself uses).

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

#[cfg(test)]
mod tests {
    use super::*;

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
