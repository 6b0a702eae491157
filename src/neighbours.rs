//! Exact k-nearest-neighbour search (placeholder brute force until the blocked GEMM lands).

pub struct Neighbours {
    pub k: usize,
    pub index: Vec<u32>,
    pub dist2: Vec<f32>,
}

impl Neighbours {
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let s = i * self.k;
        self.index[s..s + self.k]
            .iter()
            .zip(&self.dist2[s..s + self.k])
            .filter(|(j, _)| **j != u32::MAX)
            .map(|(j, d)| (*j as usize, *d))
    }
    pub fn len(&self) -> usize {
        self.index.len() / self.k.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

pub fn knn(data: &[f32], dim: usize, k: usize, groups: &[u32]) -> Neighbours {
    let n = groups.len();
    let mut index = vec![u32::MAX; n * k];
    let mut dist2 = vec![f32::INFINITY; n * k];
    for i in 0..n {
        let mut all: Vec<(f32, usize)> = (0..n)
            .filter(|&j| groups[j] != groups[i])
            .map(|j| {
                let d: f32 = (0..dim)
                    .map(|t| (data[i * dim + t] - data[j * dim + t]).powi(2))
                    .sum();
                (d, j)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (slot, (d, j)) in all.into_iter().take(k).enumerate() {
            index[i * k + slot] = j as u32;
            dist2[i * k + slot] = d;
        }
    }
    Neighbours { k, index, dist2 }
}
