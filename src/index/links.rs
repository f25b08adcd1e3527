//! The neighbour lists of an HNSW graph, laid out for the search loop.
//!
//! Every step of a search reads the level-0 list of one node, at a random place in memory. As
//! nested vectors that was three dependent loads (the node's vector of levels, the level's
//! vector, then the ids), and profiling the 325k build showed about a quarter of construction
//! waiting on them. So level 0 is one flat array, as in hnswlib: each node owns `m0` u32 slots
//! rounded up to whole 64-byte cache lines and aligned to them (two lines for M = 16), filled
//! with ids and then [`EMPTY`]. A search step is one load of one or two lines, which can be
//! prefetched. Upper levels hold 1/M of the nodes and are read a few times per search, so they
//! stay plain lists.

/// Marks an unused level-0 slot (node ids are below it: a graph has fewer than 2^32-1 nodes).
pub const EMPTY: u32 = u32::MAX;

/// One cache line of level-0 slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Line([u32; 16]);

const EMPTY_LINE: Line = Line([EMPTY; 16]);

/// Neighbour lists of every node on every level (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// Level-0 capacity of a node.
    m0: usize,
    /// Cache lines per node on level 0.
    lines: usize,
    level0: Vec<Line>,
    /// `upper[i][l - 1]`: node i's list on level l ≥ 1.
    upper: Vec<Vec<Vec<u32>>>,
}

impl Links {
    /// No nodes; level-0 lists of up to `m0` ids.
    pub fn new(m0: usize) -> Self {
        Links {
            m0,
            lines: m0.div_ceil(16).max(1),
            level0: Vec::new(),
            upper: Vec::new(),
        }
    }

    /// From nested lists, `lists[i][l]` (a node has `lists[i].len() - 1` upper levels).
    ///
    /// Panics if a level-0 list is longer than `m0` or a node has no level 0.
    #[cfg(test)]
    pub fn from_lists(m0: usize, lists: Vec<Vec<Vec<u32>>>) -> Self {
        let mut links = Links::new(m0);
        links.reserve(lists.len());
        for (i, mut node) in lists.into_iter().enumerate() {
            assert!(!node.is_empty(), "node {i} has no level 0");
            let zero = node.remove(0);
            links.push_node(node.len());
            links.set(i as u32, 0, &zero);
            links.upper[i] = node;
        }
        links
    }

    pub fn reserve(&mut self, n: usize) {
        self.level0.reserve(n * self.lines);
        super::advise_huge_pages(&self.level0);
        self.upper.reserve(n);
    }

    /// Appends a node with empty lists on levels 0..=level.
    pub fn push_node(&mut self, level: usize) {
        assert!(self.upper.len() < EMPTY as usize, "too many nodes");
        self.level0
            .extend(std::iter::repeat_n(EMPTY_LINE, self.lines));
        self.upper.push(vec![Vec::new(); level]);
    }

    /// Sets node i's lists on levels 1.. (`lists[l - 1]`), replacing what it had.
    pub fn set_upper(&mut self, i: u32, lists: Vec<Vec<u32>>) {
        self.upper[i as usize] = lists;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.upper.len()
    }

    /// Node i's level-0 slots (ids, then [`EMPTY`]).
    #[inline]
    fn slots(&self, i: u32) -> &[u32] {
        let line = &self.level0[i as usize * self.lines..][..self.lines];
        // SAFETY: `Line` is `repr(C)` over `[u32; 16]` (no padding), so `lines` consecutive
        // lines are `16·lines` consecutive u32.
        let all =
            unsafe { std::slice::from_raw_parts(line.as_ptr().cast::<u32>(), 16 * self.lines) };
        &all[..self.m0]
    }

    /// Node i's neighbours on level l.
    #[inline]
    pub fn get(&self, i: u32, l: usize) -> &[u32] {
        if l == 0 {
            let s = self.slots(i);
            let len = s.iter().position(|&x| x == EMPTY).unwrap_or(s.len());
            &s[..len]
        } else {
            &self.upper[i as usize][l - 1]
        }
    }

    /// Replaces node i's neighbours on level l. Panics if a level-0 list is longer than `m0`.
    pub fn set(&mut self, i: u32, l: usize, list: &[u32]) {
        if l == 0 {
            assert!(
                list.len() <= self.m0,
                "{} level-0 links, more than {}",
                list.len(),
                self.m0
            );
            let lines = &mut self.level0[i as usize * self.lines..][..self.lines];
            for (k, line) in lines.iter_mut().enumerate() {
                for (j, slot) in line.0.iter_mut().enumerate() {
                    *slot = list.get(16 * k + j).copied().unwrap_or(EMPTY);
                }
            }
        } else {
            let dst = &mut self.upper[i as usize][l - 1];
            dst.clear();
            dst.extend_from_slice(list);
        }
    }

    /// Asks the CPU to start loading node i's level-0 list (a hint: no effect on results).
    #[inline(always)]
    pub fn prefetch0(&self, i: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let first = i as usize * self.lines;
            for line in self.level0[first..first + self.lines].iter() {
                // SAFETY: prefetch never faults; the address is a line of `level0`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>((line as *const Line).cast::<i8>()) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_on_every_level() {
        let lists = vec![
            vec![vec![1, 2, 3]],
            vec![(0..20).collect(), vec![7], vec![]],
            vec![vec![]],
        ];
        let mut links = Links::from_lists(20, lists.clone());
        assert_eq!(links.len(), 3);
        for (i, node) in lists.iter().enumerate() {
            for (l, list) in node.iter().enumerate() {
                assert_eq!(links.get(i as u32, l), &list[..], "node {i} level {l}");
            }
        }
        // Shrinking a full list leaves no stale ids behind.
        links.set(1, 0, &[4, 5]);
        assert_eq!(links.get(1, 0), &[4, 5]);
        links.set(1, 2, &[0]);
        assert_eq!(links.get(1, 2), &[0]);
        assert_eq!(links, {
            let mut l = lists;
            l[1][0] = vec![4, 5];
            l[1][2] = vec![0];
            Links::from_lists(20, l)
        });
        // Level-0 lists start on a cache line.
        assert_eq!(links.slots(1).as_ptr() as usize % 64, 0);
    }

    #[test]
    #[should_panic(expected = "more than 4")]
    fn an_overlong_level0_list_is_refused() {
        Links::new(4).push_node(0);
        let mut links = Links::new(4);
        links.push_node(0);
        links.set(0, 0, &[1, 2, 3, 4, 5]);
    }
}
