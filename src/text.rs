//! Edit distances, for suggesting the name a user probably meant (mapped columns, config keys,
//! input columns) and for comparing JOB_CD sequences in `trainer eval`.

/// Names within edit distance 2, or equal ignoring case and non-alphanumerics.
pub fn close_matches(name: &str, candidates: &[String]) -> Vec<String> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(|c| c.to_lowercase())
            .collect::<String>()
    };
    let n = norm(name);
    let mut out: Vec<(usize, String)> = candidates
        .iter()
        .filter_map(|c| {
            let a: Vec<char> = n.chars().collect();
            let b: Vec<char> = norm(c).chars().collect();
            let d = levenshtein(&a, &b);
            (d <= 2).then(|| (d, c.clone()))
        })
        .collect();
    out.sort();
    out.into_iter().take(3).map(|(_, c)| c).collect()
}

/// Edit distance between two sequences (also used by `trainer eval` for JOB_CD sequences).
pub fn levenshtein<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
