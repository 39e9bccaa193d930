//! Pure views of services and tasks: progress rows, readiness for `--wait`,
//! names and ids as the tables show them, and argument parsing.

use crate::progress::Row;
use anyhow::bail;
use flotilla_client::ServiceView;
use flotilla_core::Task;
use flotilla_spec::DeployMode;

/// Ids are shown with 12 characters, like Docker.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `stack_service.slot`, or `stack_service.<node>` for global tasks (slot 0).
pub fn task_name(task: &Task) -> String {
    if task.slot == 0 {
        let node = task.node.as_deref().map(short_id).unwrap_or("?");
        format!("{}.{node}", task.service)
    } else {
        format!("{}.{}", task.service, task.slot)
    }
}

pub fn is_job(view: &ServiceView) -> bool {
    matches!(
        view.record.spec.deploy.mode,
        DeployMode::ReplicatedJob | DeployMode::GlobalJob
    )
}

pub fn mode_name(view: &ServiceView) -> &'static str {
    match view.record.spec.deploy.mode {
        DeployMode::Replicated => "replicated",
        DeployMode::Global => "global",
        DeployMode::ReplicatedJob => "replicated-job",
        DeployMode::GlobalJob => "global-job",
    }
}

/// Whether a service is where `--wait` wants it: every replica running and
/// healthy (services without a health check count as healthy), or for jobs
/// every task complete (`completed` counts them).
pub fn is_ready(view: &ServiceView, completed: u64) -> bool {
    let s = &view.status;
    if is_job(view) {
        return completed >= s.desired;
    }
    s.running == s.desired && s.healthy == s.desired
}

/// One progress row: desired/running/healthy and the problem, if any.
pub fn service_row(view: &ServiceView, completed: u64) -> Row {
    let s = &view.status;
    let mut text = if is_job(view) {
        format!("{completed}/{} complete", s.desired)
    } else {
        format!(
            "{}/{} running, {}/{} healthy",
            s.running, s.desired, s.healthy, s.desired
        )
    };
    if is_ready(view, completed) {
        text.push_str("  ✓");
    } else if let Some(p) = &s.problem {
        text.push_str(&format!("  ({p})"));
    }
    Row {
        label: view.record.name.clone(),
        text,
    }
}

/// Why each service that is not ready is not, for the `--wait` failure message.
pub fn not_ready_report(views: &[(ServiceView, u64)]) -> String {
    let mut lines = Vec::new();
    for (view, completed) in views {
        if is_ready(view, *completed) {
            continue;
        }
        let row = service_row(view, *completed);
        let why = view.status.problem.as_deref().unwrap_or(
            if view.status.running < view.status.desired {
                "replicas not running yet"
            } else {
                "health check not passing yet"
            },
        );
        let image = view.record.spec.image.as_deref().unwrap_or("?");
        lines.push(format!(
            "  {} (image {image}): {why} [{}]",
            view.record.id, row.text
        ));
    }
    lines.join("\n")
}

/// `web=5 api=2` → [("web", 5), ("api", 2)].
pub fn parse_scale(args: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for a in args {
        let Some((name, n)) = a.split_once('=') else {
            bail!("{a:?}: expected SERVICE=REPLICAS, e.g. web=5");
        };
        let n: u64 = n.trim().parse().map_err(|_| {
            anyhow::anyhow!("{a:?}: the replica count {n:?} is not a whole number >= 0")
        })?;
        if name.trim().is_empty() {
            bail!("{a:?}: the service name is empty; expected SERVICE=REPLICAS");
        }
        out.push((name.trim().to_string(), n));
    }
    Ok(out)
}

/// `--since 5m` or an RFC 3339 time → milliseconds since the epoch.
pub fn since_ms(since: Option<&str>) -> anyhow::Result<u64> {
    match since {
        None => Ok(0),
        Some(s) => {
            let t = flotilla_runtime::spec::parse_since_now(s)?;
            Ok(t.timestamp_millis().max(0) as u64)
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, second precision).
pub fn format_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Project-name candidates for a service argument: `web` with project `s`
/// is tried as `s_web` first, then as a full id.
pub fn service_candidates(arg: &str, project: Option<&str>) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(p) = project {
        if !arg.starts_with(&format!("{p}_")) {
            c.push(format!("{p}_{arg}"));
        }
    }
    c.push(arg.to_string());
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_client::ServiceCounts;
    use flotilla_core::objects::ServiceRecord;

    fn view(
        mode: DeployMode,
        desired: u64,
        running: u64,
        healthy: u64,
        problem: Option<&str>,
    ) -> ServiceView {
        let mut spec = flotilla_spec::Service::default();
        spec.deploy.mode = mode;
        ServiceView {
            record: ServiceRecord {
                id: "s_web".into(),
                stack: "s".into(),
                name: "web".into(),
                version: 1,
                spec,
                previous: None,
                created_at: 0,
                updated_at: 0,
            },
            status: ServiceCounts {
                desired,
                running,
                healthy,
                problem: problem.map(str::to_string),
            },
        }
    }

    #[test]
    fn readiness_needs_running_and_healthy() {
        assert!(is_ready(&view(DeployMode::Replicated, 3, 3, 3, None), 0));
        assert!(!is_ready(&view(DeployMode::Replicated, 3, 3, 2, None), 0));
        assert!(!is_ready(&view(DeployMode::Replicated, 3, 2, 2, None), 0));
        assert!(is_ready(&view(DeployMode::Replicated, 0, 0, 0, None), 0));
        assert!(!is_ready(
            &view(DeployMode::ReplicatedJob, 2, 0, 0, None),
            1
        ));
        assert!(is_ready(&view(DeployMode::ReplicatedJob, 2, 0, 0, None), 2));
    }

    #[test]
    fn rows_and_report_show_the_problem() {
        let v = view(
            DeployMode::Replicated,
            2,
            0,
            0,
            Some("rejected: image \"nope\" not found"),
        );
        let row = service_row(&v, 0);
        assert_eq!(row.label, "web");
        assert!(row.text.contains("0/2 running"), "{}", row.text);
        assert!(row.text.contains("image \"nope\""), "{}", row.text);
        let report = not_ready_report(&[(v, 0)]);
        assert!(
            report.contains("s_web (image ?): rejected: image \"nope\" not found"),
            "{report}"
        );
    }

    #[test]
    fn scale_arguments() {
        let args = vec!["web=5".to_string(), "api=0".to_string()];
        assert_eq!(
            parse_scale(&args).unwrap(),
            vec![("web".into(), 5), ("api".into(), 0)]
        );
        assert!(parse_scale(&["web".into()]).is_err());
        assert!(parse_scale(&["web=-1".into()]).is_err());
        assert!(parse_scale(&["=3".into()]).is_err());
    }

    #[test]
    fn names_and_candidates() {
        let mut t = Task::new("0123456789abcdef".into(), "s_web".into(), 2, 1, 0);
        assert_eq!(task_name(&t), "s_web.2");
        t.slot = 0;
        t.node = Some("node1234567890".into());
        assert_eq!(task_name(&t), "s_web.node12345678");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(service_candidates("web", Some("s")), vec!["s_web", "web"]);
        assert_eq!(service_candidates("s_web", Some("s")), vec!["s_web"]);
        assert_eq!(service_candidates("web", None), vec!["web"]);
    }

    #[test]
    fn since_parses_durations() {
        assert_eq!(since_ms(None).unwrap(), 0);
        assert!(since_ms(Some("5m")).unwrap() > 0);
        assert!(since_ms(Some("soon")).is_err());
        assert!(format_ms(0).starts_with("1970-01-01T00:00:00"));
    }
}
