//! The compose stack and the Dockerfile cannot be run here (no Docker
//! engine), so this checks what can go stale: every file they refer to
//! exists; every SLUICE_* setting is one sluice knows and the set passes
//! sluice's own validation; ports, hosts and credentials agree across
//! services, the Dockerfile, Prometheus and the example application; the
//! MariaDB is throttled with the same files `sluice demo` uses; and every
//! metric the Grafana dashboard plots is one a running sluice exports.

mod support;

use serde_json::Value;
use sluice::config::{Config, RawConfig, KEYS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The subset of compose YAML the file uses: services, their scalar keys,
/// and their lists and maps one level down.
#[derive(Debug, Default)]
struct Service {
    lists: HashMap<String, Vec<String>>,
    maps: HashMap<String, HashMap<String, String>>,
    scalars: HashMap<String, String>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

fn services(yaml: &str) -> HashMap<String, Service> {
    let mut out: HashMap<String, Service> = HashMap::new();
    let mut in_services = false;
    let (mut svc, mut key) = (String::new(), String::new());
    for line in yaml.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        match indent {
            0 => in_services = text == "services:",
            2 if in_services => {
                svc = text.trim_end_matches(':').to_string();
                out.entry(svc.clone()).or_default();
            }
            4 if in_services => {
                let (k, v) = text.split_once(':').expect("key: value");
                key = k.to_string();
                if !v.trim().is_empty() {
                    out.get_mut(&svc)
                        .unwrap()
                        .scalars
                        .insert(key.clone(), unquote(v));
                }
            }
            6 if in_services => {
                let s = out.get_mut(&svc).unwrap();
                if let Some(item) = text.strip_prefix("- ") {
                    s.lists.entry(key.clone()).or_default().push(unquote(item));
                } else if let Some((k, v)) = text.split_once(": ") {
                    s.maps
                        .entry(key.clone())
                        .or_default()
                        .insert(k.to_string(), unquote(v));
                }
            }
            _ => {}
        }
    }
    out
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().expect("a port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_and_dockerfile_agree_with_sluice() {
    let compose = read("docker/compose.yaml");
    let svcs = services(&compose);
    for name in [
        "mariadb",
        "freezer",
        "sluice",
        "app",
        "prometheus",
        "grafana",
    ] {
        assert!(svcs.contains_key(name), "service {name} missing");
    }
    let docker = root().join("docker");

    // Every mounted file and build context exists.
    for (name, s) in &svcs {
        for v in s.lists.get("volumes").into_iter().flatten() {
            let src = v.split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(docker.join(src).exists(), "{name}: {src} does not exist");
            }
        }
        if let Some(b) = s.maps.get("build") {
            let ctx = docker.join(&b["context"]);
            assert!(
                ctx.join(&b["dockerfile"]).exists(),
                "{name}: no {}",
                b["dockerfile"]
            );
            let target = format!(" AS {}", b["target"]);
            assert!(
                read(&b["dockerfile"]).contains(&target),
                "{name}: no stage{target}"
            );
        }
    }
    // Every COPY source of the Dockerfile exists in the build context.
    let dockerfile = read("docker/Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
        }
    }

    // sluice's settings: known keys, and valid as a whole.
    let env = &svcs["sluice"].maps["environment"];
    let cli_only = ["SLUICE_URL"];
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        let known = KEYS.iter().any(|d| d.env == k) || cli_only.contains(&k.as_str());
        assert!(known, "compose sets {k}, which sluice does not know");
        vars.push((k.clone(), v.clone()));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::default();
    for (k, v) in &vars {
        let key = KEYS.iter().find(|d| d.env == k);
        match key.map(|d| d.name) {
            Some("db_url") => raw.db_url = Some(v.clone()),
            Some("http_listen") => raw.http_listen = Some(v.clone()),
            Some("mysql_listen") => raw.mysql_listen = Some(v.clone()),
            Some("mysql_users") => raw.mysql_users = Some(v.clone()),
            Some("admin_tokens") => raw.admin_tokens = Some(v.clone()),
            Some("auth_tokens") => {
                raw.auth_tokens = Some(v.split(',').map(str::to_string).collect())
            }
            Some("log") => raw.log = Some(v.clone()),
            Some(other) => panic!("the test does not map {other} yet"),
            None => {}
        }
    }
    raw.data_dir = Some(dir.path().display().to_string());
    let cfg =
        Config::from_raw(&raw).unwrap_or_else(|e| panic!("compose's settings are refused: {e}"));
    let http_port = cfg.http.listen.port();
    let mysql = cfg.mysql.as_ref().expect("the MySQL front is on");
    let mysql_port = mysql.listen.port();
    assert!(
        !cfg.http.admin_tokens.is_empty(),
        "the CLI in the container reads SLUICE_ADMIN_TOKENS, as the server does"
    );
    assert_eq!(port_of(&env["SLUICE_URL"]), http_port);

    // Ports agree: published ports, Dockerfile, Prometheus, the application.
    let ports = &svcs["sluice"].lists["ports"];
    assert!(
        ports.contains(&format!("{http_port}:{http_port}")),
        "{ports:?}"
    );
    assert!(
        ports.contains(&format!("{mysql_port}:{mysql_port}")),
        "{ports:?}"
    );
    assert!(dockerfile.contains(&format!("EXPOSE {http_port} {mysql_port}")));
    assert!(dockerfile.contains(&format!("SLUICE_HTTP_LISTEN=0.0.0.0:{http_port}")));
    assert!(dockerfile.contains(&format!("SLUICE_MYSQL_LISTEN=0.0.0.0:{mysql_port}")));
    let prom = read("docker/prometheus/prometheus.yml");
    assert!(prom.contains(&format!("\"sluice:{http_port}\"")), "{prom}");

    // The application logs in to the MySQL front as a user it knows.
    let app_url =
        mysql_async::Opts::from_url(&svcs["app"].maps["environment"]["ORDERS_URL"]).unwrap();
    assert_eq!(app_url.ip_or_hostname(), "sluice");
    assert_eq!(app_url.tcp_port(), mysql_port);
    let user = app_url.user().unwrap();
    let (_, hash) = mysql
        .front
        .users
        .iter()
        .find(|(n, _)| n == user)
        .expect("the app's user");
    let pass = app_url.pass().unwrap();
    let expected =
        sluice::fronts::mysql::auth::parse_hash(&sluice::fronts::mysql::auth::native_hash(pass))
            .unwrap();
    assert_eq!(
        hash, &expected,
        "the front's hash is not the app's password"
    );

    // sluice reaches MariaDB as the user init.sql creates, on the app database.
    let db = mysql_async::Opts::from_url(&cfg.db_url).unwrap();
    assert_eq!(db.ip_or_hostname(), "mariadb");
    let init = read("docker/mariadb/init.sql");
    assert!(init.contains(&format!(
        "'{}'@'%' IDENTIFIED BY '{}'",
        db.user().unwrap(),
        db.pass().unwrap()
    )));
    assert!(init.contains(&format!("ON {}.*", db.db_name().unwrap())));
    assert!(
        !init.contains("ON *.*"),
        "the write user must not hold privileges ON *.*"
    );

    // The same throttling as the demo and the tests: the same files.
    let mounts = &svcs["mariadb"].lists["volumes"];
    assert!(mounts
        .iter()
        .any(|m| m.starts_with("./mariadb/throttled.cnf:")));
    assert!(svcs["freezer"].lists["volumes"]
        .iter()
        .any(|m| m.starts_with("./mariadb/freeze.sh:")));
    let demo = read("src/cli/demo.rs");
    assert!(demo.contains("include_str!(\"../../docker/mariadb/throttled.cnf\")"));
    assert!(demo.contains("include_str!(\"../../docker/mariadb/freeze.sh\")"));
    let freezer = &svcs["freezer"].maps["environment"];
    assert_eq!(freezer["FREEZE_HOST"], "mariadb");
    assert_eq!(
        freezer["FREEZE_PASSWORD"],
        svcs["mariadb"].maps["environment"]["MARIADB_ROOT_PASSWORD"]
    );

    // Grafana: provisioned from files that exist, plotting metrics sluice has.
    let dash: Value = serde_json::from_str(&read("docker/grafana/dashboards/sluice.json")).unwrap();
    let ds = read("docker/grafana/provisioning/datasources/prometheus.yml");
    assert!(ds.contains("uid: prometheus") && ds.contains("url: http://prometheus:9090"));
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    let metrics = s.metrics().await;
    let exported: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut plotted = 0;
    for panel in dash["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], "prometheus");
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("sluice_"))
            {
                assert!(
                    exported.contains(name),
                    "the dashboard plots {name}, which sluice does not export"
                );
                plotted += 1;
            }
        }
    }
    assert!(plotted >= 20, "a dashboard of {plotted} series");
    assert!(Path::new(&docker.join("grafana/provisioning/dashboards/sluice.yml")).exists());
}
