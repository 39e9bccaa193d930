//! Placement: filters, then spread scoring, task by task, accounting each
//! placement before the next so one round never over-commits a node.

use crate::filter::{self, Rejection, Unschedulable, Usage};
use crate::model::{Node, PlacedTask, Resources, TaskRequest};
use std::collections::HashMap;

/// The outcome for one pending task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub task: String,
    pub result: Result<String, Unschedulable>,
}

/// Place `pending` tasks (in order) on `nodes`, given the tasks already
/// placed. Pure: the same inputs give the same decisions.
pub fn schedule(nodes: &[Node], placed: &[PlacedTask], pending: &[TaskRequest]) -> Vec<Decision> {
    let mut scheduler = Scheduler::new(nodes, placed);
    scheduler.place_all(pending)
}

/// Scheduling state for one round: the nodes and what each has committed.
pub struct Scheduler<'a> {
    nodes: &'a [Node],
    usage: Vec<Usage>,
    /// service → tasks of that service per node index.
    service_counts: HashMap<String, Vec<u64>>,
    /// Each node's position in id order: the final, deterministic tie-break.
    rank: Vec<usize>,
}

impl<'a> Scheduler<'a> {
    pub fn new(nodes: &'a [Node], placed: &[PlacedTask]) -> Self {
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut by_id: Vec<usize> = (0..nodes.len()).collect();
        by_id.sort_by(|&a, &b| nodes[a].id.cmp(&nodes[b].id));
        let mut rank = vec![0; nodes.len()];
        for (position, &i) in by_id.iter().enumerate() {
            rank[i] = position;
        }
        let mut scheduler = Scheduler {
            nodes,
            usage: vec![Usage::default(); nodes.len()],
            service_counts: HashMap::new(),
            rank,
        };
        for task in placed {
            // Tasks on nodes that left the cluster hold nothing.
            if let Some(&i) = index.get(task.node.as_str()) {
                scheduler.account(i, &task.service, task.reservations, &task.host_ports);
            }
        }
        scheduler
    }

    fn account(
        &mut self,
        node: usize,
        service: &str,
        reservations: Resources,
        ports: &[crate::HostPort],
    ) {
        let usage = &mut self.usage[node];
        usage.reserved.nano_cpus += reservations.nano_cpus;
        usage.reserved.memory_bytes += reservations.memory_bytes;
        usage.tasks += 1;
        usage.ports.extend(ports.iter().cloned());
        // Look up before inserting: this runs once per placement, and
        // `entry` would allocate the key every time.
        if let Some(counts) = self.service_counts.get_mut(service) {
            counts[node] += 1;
        } else {
            let mut counts = vec![0; self.nodes.len()];
            counts[node] = 1;
            self.service_counts.insert(service.to_string(), counts);
        }
    }

    /// Place tasks. Tasks with the same requirements (service, constraints,
    /// platforms, spread labels) form a group that shares the static
    /// filtering and spread branches, as Swarm's task groups do; that is what
    /// makes 10,000 replicas of a few hundred services cheap. Groups are
    /// placed in order of their first task, tasks within a group in order;
    /// decisions come back in the order of `pending`.
    pub fn place_all(&mut self, pending: &[TaskRequest]) -> Vec<Decision> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_service: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, task) in pending.iter().enumerate() {
            let candidates = by_service.entry(task.service.as_str()).or_default();
            match candidates
                .iter()
                .find(|&&g| same_requirements(&pending[groups[g][0]], task))
            {
                Some(&g) => groups[g].push(i),
                None => {
                    candidates.push(groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        let mut results: Vec<Option<Result<String, Unschedulable>>> = vec![None; pending.len()];
        for group in groups {
            let first = &pending[group[0]];
            let eligible: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| filter::static_rejection(&self.nodes[i], first).is_none())
                .collect();
            let branches = SpreadTree::new(self.nodes, &eligible, &first.spread_over);
            for i in group {
                results[i] = Some(self.place_in(&pending[i], &eligible, &branches));
            }
        }
        pending
            .iter()
            .zip(results)
            .map(|(task, result)| Decision {
                task: task.id.clone(),
                result: result.expect("every pending task belongs to exactly one group"),
            })
            .collect()
    }

    /// Place one task.
    pub fn place(&mut self, task: &TaskRequest) -> Result<String, Unschedulable> {
        let mut decision = self.place_all(std::slice::from_ref(task));
        decision.remove(0).result
    }

    fn place_in(
        &mut self,
        task: &TaskRequest,
        eligible: &[usize],
        branches: &SpreadTree,
    ) -> Result<String, Unschedulable> {
        let counts = self.service_counts.get(&task.service);
        let count = |i: usize| counts.map_or(0, |c| c[i]);
        let feasible: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|&i| {
                filter::dynamic_rejection(&self.nodes[i], &self.usage[i], count(i), task).is_none()
            })
            .collect();
        if feasible.is_empty() {
            return Err(self.explain(task));
        }
        let candidates = branches.narrow(eligible, feasible, count);
        let best = candidates
            .into_iter()
            .min_by_key(|&i| (count(i), self.usage[i].tasks, self.rank[i]))
            .expect("candidates are a non-empty subset of feasible nodes");
        self.account(best, &task.service, task.reservations, &task.host_ports);
        Ok(self.nodes[best].id.clone())
    }

    /// Build the reason: the first filter that rejects each node.
    fn explain(&self, task: &TaskRequest) -> Unschedulable {
        let counts = self.service_counts.get(&task.service);
        let mut most_free = Resources::default();
        let rejections: Vec<Rejection> = (0..self.nodes.len())
            .filter_map(|i| {
                let node = &self.nodes[i];
                filter::static_rejection(node, task).or_else(|| {
                    let free = filter::free(node, &self.usage[i]);
                    most_free.nano_cpus = most_free.nano_cpus.max(free.nano_cpus);
                    most_free.memory_bytes = most_free.memory_bytes.max(free.memory_bytes);
                    let on_node = counts.map_or(0, |c| c[i]);
                    filter::dynamic_rejection(node, &self.usage[i], on_node, task)
                })
            })
            .collect();
        filter::describe(task, self.nodes.len(), rejections, most_free)
    }
}

fn same_requirements(a: &TaskRequest, b: &TaskRequest) -> bool {
    a.service == b.service
        && a.constraints == b.constraints
        && a.platforms == b.platforms
        && a.spread_over == b.spread_over
}

/// The placement-preference tree of one task group: for each preference
/// level, each eligible node's branch (the path of label values down to that
/// level) interned as a small integer, so narrowing is vector indexing.
/// A node without the label is in the "" branch, as in Swarm.
struct SpreadTree {
    /// levels[l][node] = branch id at level l.
    levels: Vec<Vec<usize>>,
    /// Number of distinct branches per level.
    widths: Vec<usize>,
}

impl SpreadTree {
    fn new(nodes: &[Node], eligible: &[usize], labels: &[String]) -> Self {
        let mut levels = Vec::with_capacity(labels.len());
        let mut widths = Vec::with_capacity(labels.len());
        let mut parent = vec![0usize; nodes.len()];
        for label in labels {
            let mut ids: HashMap<(usize, &str), usize> = HashMap::new();
            let mut level = vec![0usize; nodes.len()];
            for &i in eligible {
                let value = nodes[i].labels.get(label).map_or("", String::as_str);
                let next = ids.len();
                level[i] = *ids.entry((parent[i], value)).or_insert(next);
            }
            widths.push(ids.len());
            parent.clone_from(&level);
            levels.push(level);
        }
        SpreadTree { levels, widths }
    }

    /// Walk the levels: at each, keep the branch whose service task count is
    /// lowest. A branch's count covers every eligible node in it, full ones
    /// included, so a full node's tasks still weigh on its branch; only
    /// branches with a feasible node can be chosen. Ties go to the branch
    /// first seen in node order, which keeps the result deterministic.
    fn narrow(
        &self,
        eligible: &[usize],
        feasible: Vec<usize>,
        count: impl Fn(usize) -> u64,
    ) -> Vec<usize> {
        let mut candidates = feasible;
        let mut in_prefix = eligible.to_vec();
        for (level, width) in self.levels.iter().zip(&self.widths) {
            let mut total = vec![0u64; *width];
            let mut selectable = vec![false; *width];
            for &i in &candidates {
                selectable[level[i]] = true;
            }
            for &i in &in_prefix {
                total[level[i]] += count(i);
            }
            let Some(chosen) = (0..*width)
                .filter(|&b| selectable[b])
                .min_by_key(|&b| total[b])
            else {
                break;
            };
            candidates.retain(|&i| level[i] == chosen);
            in_prefix.retain(|&i| level[i] == chosen);
        }
        candidates
    }
}
