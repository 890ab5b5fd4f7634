//! The deployment files of `deploy/`: the compose fleet, the Kubernetes manifests and the Helm
//! chart parse, and say what a fleet needs — at least two instances with distinct ids, a
//! disruption budget over them, probes on `/readyz` and gRPC health, a termination grace longer
//! than the daemon's drain, the Sentinel URL — and their TOML loads with the daemon's own config
//! loader. Where `kubectl` (kustomize), `promtool` or `helm` are installed they run too; without
//! them the chart is only checked statically (its templates are never rendered here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use switchboard::config::Config;
use switchboard::model::Role;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// On SIGTERM the daemon waits up to this long for desktop sessions to end after the grace
/// period (server.rs), before it deregisters.
const SESSION_END_SECS: i64 = 5;

/// Secrets as a test sets them: long enough for every key rule (32+ characters).
const CRM_KEY: &str = "crm-key-0123456789abcdef0123456789abcdef";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef0123456789abcdef";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let rel = rel.as_ref();
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

/// Every document of a YAML file, with `<<` merge keys applied (compose uses them).
fn yaml_docs(rel: impl AsRef<Path>) -> Vec<Yaml> {
    let rel = rel.as_ref();
    let docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{}: not YAML: {e}", rel.display()));
    docs.into_iter().filter(|d| !d.is_null()).map(resolve_merges).collect()
}

fn resolve_merges(y: Yaml) -> Yaml {
    match y {
        Yaml::Hash(h) => {
            let merge = Yaml::String("<<".into());
            let mut out = Hash::new();
            if let Some(base) = h.get(&merge) {
                let bases = match base {
                    Yaml::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                for b in bases {
                    let Yaml::Hash(b) = resolve_merges(b) else { panic!("`<<` merges a mapping only") };
                    out.extend(b);
                }
            }
            for (k, v) in h {
                if k != merge {
                    out.insert(k, resolve_merges(v));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str().unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
}

fn int(y: &Yaml, what: &str) -> i64 {
    y.as_i64().unwrap_or_else(|| panic!("{what}: not an integer: {y:?}"))
}

fn list<'a>(y: &'a Yaml, what: &str) -> &'a Vec<Yaml> {
    y.as_vec().unwrap_or_else(|| panic!("{what}: not a list: {y:?}"))
}

/// A mapping of strings (labels, selectors, environment) as a sorted map.
fn string_map(y: &Yaml, what: &str) -> BTreeMap<String, String> {
    let h = y.as_hash().unwrap_or_else(|| panic!("{what}: not a mapping: {y:?}"));
    h.iter()
        .map(|(k, v)| {
            let v = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                Yaml::Null => String::new(),
                other => panic!("{what}: {k:?} is {other:?}"),
            };
            (s(k, what).to_string(), v)
        })
        .collect()
}

fn is_subset(sub: &BTreeMap<String, String>, of: &BTreeMap<String, String>) -> bool {
    !sub.is_empty() && sub.iter().all(|(k, v)| of.get(k) == Some(v))
}

/// Runs a tool if it is installed: None when it is not (the caller says what was skipped).
fn run_tool(program: &str, args: &[&str], dir: &Path) -> Option<std::process::Output> {
    match Command::new(program).args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{program} is not installed; skipping `{program} {}`", args.join(" "));
            None
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(toml: &str, env: &BTreeMap<String, String>, what: &str) -> Config {
    Config::from_toml_str(toml, env).unwrap_or_else(|e| panic!("{what} does not load: {e}"))
}

/// `sleep N` of a preStop exec hook.
fn pre_stop_sleep(container: &Yaml, what: &str) -> i64 {
    let cmd: Vec<&str> =
        list(&container["lifecycle"]["preStop"]["exec"]["command"], what).iter().map(|c| s(c, what)).collect();
    assert_eq!(cmd.first(), Some(&"sleep"), "{what}: preStop is {cmd:?}");
    cmd[1].parse().unwrap_or_else(|_| panic!("{what}: sleep {:?}", cmd[1]))
}

/// The container port a probe or Service names (by name or number).
fn container_port(container: &Yaml, port: &Yaml, what: &str) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = s(port, what);
    list(&container["ports"], what)
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .map(|p| int(&p["containerPort"], what))
        .unwrap_or_else(|| panic!("{what}: no container port named {name}"))
}

fn port_of(addr: std::net::SocketAddr) -> i64 {
    i64::from(addr.port())
}

// --- Kubernetes -------------------------------------------------------------------------------

struct K8s {
    docs: Vec<(String, Yaml)>,
}

impl K8s {
    fn load() -> K8s {
        let dir = root().join("deploy/k8s");
        let kustomization = &yaml_docs("deploy/k8s/kustomization.yaml")[0];
        assert_eq!(s(&kustomization["kind"], "kustomization"), "Kustomization");
        let listed: BTreeSet<String> =
            list(&kustomization["resources"], "resources").iter().map(|r| s(r, "resources").to_string()).collect();
        let mut files = BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                files.insert(name);
            }
        }
        assert_eq!(listed, files, "kustomization.yaml lists every manifest of deploy/k8s and only those");

        let mut docs = Vec::new();
        for f in &files {
            for d in yaml_docs(PathBuf::from("deploy/k8s").join(f)) {
                let what = format!(
                    "{f}: {}/{}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                );
                for key in ["apiVersion", "kind"] {
                    s(&d[key], &what);
                }
                s(&d["metadata"]["name"], &what);
                assert!(d["metadata"]["namespace"].is_badvalue(), "{what}: manifests are namespace-agnostic");
                docs.push((what, d));
            }
        }
        K8s { docs }
    }

    fn get(&self, kind: &str, name: &str) -> &Yaml {
        self.docs
            .iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
    }

    fn all(&self, kind: &str) -> impl Iterator<Item = &Yaml> {
        self.docs.iter().map(|(_, d)| d).filter(move |d| d["kind"].as_str() == Some(kind))
    }

    /// The Secret's values as the pods' environment, placeholders replaced by working values.
    fn secret_env(&self, name: &str, working: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = string_map(&self.get("Secret", name)["stringData"], name);
        for (k, v) in working {
            assert!(env.contains_key(*k), "Secret {name} has no {k}");
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    /// The Service that selects `pods` and has `port`.
    fn service_for(&self, pods: &BTreeMap<String, String>, port: i64) -> (&Yaml, &Yaml) {
        for svc in self.all("Service") {
            let selector = string_map(&svc["spec"]["selector"], "service selector");
            if !is_subset(&selector, pods) {
                continue;
            }
            if let Some(p) = list(&svc["spec"]["ports"], "ports").iter().find(|p| p["port"].as_i64() == Some(port)) {
                return (svc, p);
            }
        }
        panic!("no Service selects {pods:?} on port {port}")
    }
}

#[test]
fn k8s_manifests_run_a_fleet_that_drains_before_it_is_killed() {
    let k = K8s::load();
    let deploy = k.get("Deployment", "switchboard");
    let replicas = int(&deploy["spec"]["replicas"], "replicas");
    assert!(replicas >= 2, "replicas {replicas}: a fleet needs at least two");
    let pod = &deploy["spec"]["template"];
    let labels = string_map(&pod["metadata"]["labels"], "pod labels");
    assert!(is_subset(&string_map(&deploy["spec"]["selector"]["matchLabels"], "selector"), &labels));
    assert_eq!(int(&deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], "maxUnavailable"), 0);

    // A disruption budget over exactly these pods that lets one go at a time but never all.
    let pdb = k
        .all("PodDisruptionBudget")
        .find(|p| is_subset(&string_map(&p["spec"]["selector"]["matchLabels"], "pdb selector"), &labels))
        .expect("a PodDisruptionBudget selects the Switchboard pods");
    match (pdb["spec"]["maxUnavailable"].as_i64(), pdb["spec"]["minAvailable"].as_i64()) {
        (Some(max), None) => assert!((1..replicas).contains(&max), "maxUnavailable {max}"),
        (None, Some(min)) => assert!(min >= 1 && min < replicas, "minAvailable {min}"),
        other => panic!("the PDB needs one integer of maxUnavailable / minAvailable: {other:?}"),
    }

    let spec = &pod["spec"];
    let containers = list(&spec["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<&str> = list(&c["args"], "args").iter().map(|a| s(a, "args")).collect();
    assert_eq!(args[0], "serve");

    // Probes: ready = /readyz on the HTTP listener, alive = gRPC health on the gRPC listener.
    let readiness = &c["readinessProbe"]["httpGet"];
    assert_eq!(s(&readiness["path"], "readiness path"), "/readyz");
    assert_eq!(container_port(c, &readiness["port"], "readiness port"), 8080);
    for probe in ["livenessProbe", "startupProbe"] {
        let p = &c[probe];
        if !p["grpc"].is_badvalue() {
            assert_eq!(int(&p["grpc"]["port"], probe), 50051, "{probe}");
        } else {
            assert_eq!(s(&p["httpGet"]["path"], probe), "/healthz", "{probe}");
        }
    }

    // The instance id is the pod's name; the secrets come from the Secret.
    let envs = list(&c["env"], "env");
    let instance = envs.iter().find(|e| e["name"].as_str() == Some("SWITCHBOARD_INSTANCE_ID")).expect("an instance id");
    assert_eq!(s(&instance["valueFrom"]["fieldRef"]["fieldPath"], "instance id"), "metadata.name");
    let secret_name = s(&list(&c["envFrom"], "envFrom")[0]["secretRef"]["name"], "envFrom");
    assert_eq!(secret_name, "switchboard-secrets");

    // Non-root, nothing writable but /tmp, spread over nodes, resources requested.
    assert_eq!(spec["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    let mounts = list(&c["volumeMounts"], "volumeMounts");
    let tmp = mounts.iter().find(|m| m["mountPath"].as_str() == Some("/tmp")).expect("/tmp is mounted");
    let volumes = list(&spec["volumes"], "volumes");
    let volume = |name: &str| volumes.iter().find(|v| v["name"].as_str() == Some(name)).unwrap();
    assert!(volume(s(&tmp["name"], "tmp")).as_hash().unwrap().contains_key(&Yaml::String("emptyDir".into())));
    assert!(!c["resources"]["requests"]["memory"].is_badvalue() && !c["resources"]["limits"]["memory"].is_badvalue());
    let anti = list(&spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"], "anti");
    let term = &anti[0]["podAffinityTerm"];
    assert_eq!(s(&term["topologyKey"], "topologyKey"), "kubernetes.io/hostname");
    assert!(is_subset(&string_map(&term["labelSelector"]["matchLabels"], "anti-affinity"), &labels));

    // Services: gRPC (appProtocol grpc) and HTTP, onto the container's listeners.
    let (_, grpc) = k.service_for(&labels, 50051);
    assert_eq!(s(&grpc["appProtocol"], "grpc appProtocol"), "grpc");
    assert_eq!(container_port(c, &grpc["targetPort"], "grpc targetPort"), 50051);
    let (_, http) = k.service_for(&labels, 8080);
    assert_eq!(container_port(c, &http["targetPort"], "http targetPort"), 8080);

    // The config: the ConfigMap's TOML loads with the daemon's loader, given the Secret.
    let mount = mounts.iter().find(|m| m["mountPath"].as_str() == Some("/etc/switchboard")).expect("config mount");
    let config_volume = volume(s(&mount["name"], "config mount"));
    let cm_name = s(&config_volume["configMap"]["name"], "configMap");
    let cm = k.get("ConfigMap", cm_name);
    let file = args.iter().skip_while(|a| **a != "--config").nth(1).expect("serve --config FILE");
    let key = file.strip_prefix("/etc/switchboard/").expect("the config is in the mounted directory");
    let toml = s(&cm["data"][key], "switchboard.toml");
    let redis_url =
        "redis+sentinel://:pw@sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379/mymaster/0";
    let secret_env = k.secret_env(
        secret_name,
        &[
            ("SWITCHBOARD_REDIS_URL", redis_url),
            ("SWITCHBOARD_CRM_API_KEY", CRM_KEY),
            ("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY),
        ],
    );
    let mut pod_env = secret_env.clone();
    pod_env.insert("SWITCHBOARD_INSTANCE_ID".into(), "switchboard-7d9c5b6f4-x2x9z".into());
    let cfg = load(toml, &pod_env, "the ConfigMap's switchboard.toml");
    assert_eq!(cfg.redis.url, redis_url);
    assert_eq!(cfg.server.instance_id, "switchboard-7d9c5b6f4-x2x9z");
    assert_eq!(port_of(cfg.server.grpc_listen), 50051);
    assert_eq!(port_of(cfg.server.http_listen), 8080);
    assert!(!cfg.server.grpc_listen.ip().is_loopback(), "the pod's listeners face the pod network");
    let metrics = cfg.server.metrics_listen.expect("metrics on their own listener");
    assert_eq!(container_port(c, &Yaml::String("metrics".into()), "metrics"), port_of(metrics));
    assert_eq!(s(&pod["metadata"]["annotations"]["prometheus.io/port"], "annotation"), port_of(metrics).to_string());

    // The drain fits in the termination grace: preStop sleep, then the daemon's own grace, then
    // the sessions' end, all before the SIGKILL.
    let term_grace = int(&spec["terminationGracePeriodSeconds"], "terminationGracePeriodSeconds");
    let sleep = pre_stop_sleep(c, "switchboard");
    let drain = sleep + cfg.server.shutdown_grace_secs as i64 + SESSION_END_SECS;
    assert!(term_grace > drain, "terminationGracePeriodSeconds {term_grace} <= preStop {sleep} + drain");

    // The placeholders of the example Secret stop the pods instead of running on them.
    for var in ["SWITCHBOARD_REDIS_URL", "SWITCHBOARD_ADMIN_KEY"] {
        let mut e = pod_env.clone();
        let placeholder = string_map(&k.get("Secret", secret_name)["stringData"], "secret")[var].clone();
        e.insert(var.into(), placeholder.clone());
        let err = Config::from_toml_str(toml, &e).expect_err(&format!("{var}={placeholder:?} must not start a pod"));
        eprintln!("{var} placeholder refused: {err}");
    }

    // The CRM store: its own Deployment and Service, reached at the config's crm.endpoint.
    let crm = k.get("Deployment", "switchboard-crm");
    let crm_pod = &crm["spec"]["template"];
    let crm_labels = string_map(&crm_pod["metadata"]["labels"], "crm pod labels");
    assert!(is_subset(&string_map(&crm["spec"]["selector"]["matchLabels"], "crm selector"), &crm_labels));
    assert!(!is_subset(&string_map(&deploy["spec"]["selector"]["matchLabels"], "selector"), &crm_labels));
    assert!(!is_subset(&string_map(&crm["spec"]["selector"]["matchLabels"], "selector"), &labels));
    let cc = &list(&crm_pod["spec"]["containers"], "crm containers")[0];
    let crm_args: Vec<&str> = list(&cc["args"], "crm args").iter().map(|a| s(a, "crm args")).collect();
    assert_eq!(crm_args[0], "crm");
    let crm_file = crm_args.iter().skip_while(|a| **a != "--config").nth(1).expect("crm --config FILE");
    let crm_toml = s(&cm["data"][crm_file.strip_prefix("/etc/switchboard/").unwrap()], "crm.toml");
    let db_secret = cc["envFrom"][0]["secretRef"]["name"].as_str().expect("the CRM's database Secret");
    let mut crm_env = k.secret_env(db_secret, &[("SWITCHBOARD_CRM_DATABASE", "postgres://switchboard:pw@db:5432/sb")]);
    for e in list(&cc["env"], "crm env") {
        let name = s(&e["name"], "crm env");
        if let Some(r) = e["valueFrom"]["secretKeyRef"].as_hash() {
            let secret = s(&r[&Yaml::String("name".into())], name);
            let key = s(&r[&Yaml::String("key".into())], name);
            assert_eq!(secret, secret_name, "{name}");
            crm_env.insert(name.into(), secret_env[key].clone());
        }
    }
    let crm_cfg = load(crm_toml, &crm_env, "the ConfigMap's crm.toml");
    assert!(crm_cfg.crm.database.starts_with("postgres://"));
    assert!(
        crm_cfg.auth.keys.iter().any(|key| key.role == Role::Crm && key.key == CRM_KEY),
        "the store accepts the daemon's key"
    );
    let crm_port = port_of(crm_cfg.crm.listen);
    assert_eq!(container_port(cc, &Yaml::String("grpc".into()), "crm port"), crm_port);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(int(&cc[probe]["grpc"]["port"], probe), crm_port, "crm {probe}");
    }
    let (crm_svc, _) = k.service_for(&crm_labels, crm_port);
    let endpoint = format!("http://{}:{crm_port}", s(&crm_svc["metadata"]["name"], "crm service"));
    assert_eq!(cfg.crm.endpoint, endpoint, "the daemon reaches the CRM store's Service");
    assert_eq!(cfg.crm.api_key.expose(), CRM_KEY);
    let crm_grace = int(&crm_pod["spec"]["terminationGracePeriodSeconds"], "crm grace");
    assert!(crm_grace > pre_stop_sleep(cc, "crm") + 10);
    assert!(
        k.all("PodDisruptionBudget")
            .any(|p| is_subset(&string_map(&p["spec"]["selector"]["matchLabels"], "pdb"), &crm_labels)),
        "a PodDisruptionBudget for the CRM store"
    );

    // kustomize (built into kubectl) builds the same set of objects.
    if let Some(out) = run_tool("kubectl", &["kustomize", "deploy/k8s"], root()) {
        assert_success(&out, "kubectl kustomize deploy/k8s");
        let built = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
        assert_eq!(built.len(), k.docs.len(), "kustomize builds every object once");
    }
}

// --- Compose ----------------------------------------------------------------------------------

/// Compose's interpolation of `${NAME}`, `${NAME:-default}`, `${NAME:?error}` (and without the
/// colon), `$$`. `vars` are the variables set in the shell or deploy/.env.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').expect("an unclosed ${");
            let expr = &r[..end];
            let name_end = expr.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            let value = vars.get(name).filter(|v| !(op.starts_with(':') && v.is_empty()));
            let v = match (value, op.trim_start_matches(':').chars().next()) {
                (Some(v), _) => v.clone(),
                (None, Some('-')) => op.trim_start_matches(':')[1..].to_string(),
                (None, Some('?')) => panic!("compose would stop: {name} is unset"),
                (None, _) => String::new(),
            };
            out.push_str(&v);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A service's environment as the container gets it.
fn service_env(svc: &Yaml, vars: &BTreeMap<String, String>, what: &str) -> BTreeMap<String, String> {
    string_map(&svc["environment"], what).into_iter().map(|(k, v)| (k, interpolate(&v, vars))).collect()
}

/// `host:container[:ro]` volumes → container path → host path (relative to deploy/).
fn bind_mounts(svc: &Yaml, what: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in list(&svc["volumes"], what) {
        let parts: Vec<&str> = s(v, what).split(':').collect();
        if parts[0].starts_with("./") {
            assert!(root().join("deploy").join(parts[0]).exists(), "{what}: {} does not exist", parts[0]);
            out.insert(parts[1].to_string(), parts[0].to_string());
        }
    }
    out
}

fn seconds(y: &Yaml, what: &str) -> i64 {
    let t = s(y, what);
    t.strip_suffix('s').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{what}: {t:?} is not N s"))
}

fn command(svc: &Yaml, what: &str) -> Vec<String> {
    list(&svc["command"], what).iter().map(|c| s(c, what).to_string()).collect()
}

/// The file a `--config FILE` argument names, read from the repository through the bind mount.
fn mounted_config(svc: &Yaml, what: &str) -> (String, String) {
    let cmd = command(svc, what);
    let file = cmd.iter().skip_while(|a| *a != "--config").nth(1).unwrap_or_else(|| panic!("{what}: no --config"));
    let host = bind_mounts(svc, what).remove(file).unwrap_or_else(|| panic!("{what}: {file} is not mounted"));
    let rel = format!("deploy/{}", host.trim_start_matches("./"));
    (rel.clone(), read(rel))
}

#[test]
fn compose_fleet_runs_three_instances_behind_sentinel_with_the_crm_on_postgres() {
    // The single-instance file still parses and checks readiness.
    let single = &yaml_docs("deploy/compose.yaml")[0];
    let hc: Vec<&str> = list(&single["services"]["switchboard"]["healthcheck"]["test"], "healthcheck")
        .iter()
        .map(|t| s(t, "hc"))
        .collect();
    assert!(hc.iter().any(|t| t.ends_with("/readyz")), "{hc:?}");

    let fleet = &yaml_docs("deploy/compose-fleet.yaml")[0];
    let services = fleet["services"].as_hash().expect("services");
    let service = |name: &str| &fleet["services"][name];
    let vars = env(&[
        ("REDIS_PASSWORD", "redispw0123"),
        ("POSTGRES_PASSWORD", "pgpw0123"),
        ("SWITCHBOARD_CRM_API_KEY", CRM_KEY),
        ("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY),
    ]);

    // Three Switchboard instances of the same image, each with its own id.
    let instances: Vec<&str> =
        services.keys().map(|k| s(k, "service")).filter(|n| n.starts_with("switchboard")).collect();
    assert_eq!(instances.len(), 3, "{instances:?}");
    let mut ids = BTreeSet::new();
    let mut images = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    let mut metrics_targets = BTreeSet::new();
    let mut sentinel_hosts = None;
    let mut crm_endpoint = None;
    for name in &instances {
        let svc = service(name);
        images.insert(s(&svc["image"], name).to_string());
        assert_eq!(s(&svc["build"]["dockerfile"], name), "deploy/Containerfile");
        assert_eq!(command(svc, name)[0], "serve");
        let (rel, toml) = mounted_config(svc, name);
        assert_eq!(rel, "deploy/fleet/switchboard.toml");
        let e = service_env(svc, &vars, name);
        let cfg = load(&toml, &e, &format!("{rel} for {name}"));
        assert!(ids.insert(cfg.server.instance_id.clone()), "{name}: instance id {:?} twice", cfg.server.instance_id);
        assert!(!cfg.server.instance_id.is_empty(), "{name} has a fixed instance id");
        assert_eq!(cfg.crm.api_key.expose(), CRM_KEY);
        crm_endpoint = Some(cfg.crm.endpoint.clone());

        // Redis through the Sentinels of this file.
        let url =
            cfg.redis.url.strip_prefix("redis+sentinel://").unwrap_or_else(|| panic!("{name}: {}", cfg.redis.url));
        let (auth, rest) = url.split_once('@').expect("the URL carries Redis's password");
        assert_eq!(auth, ":redispw0123");
        let (hosts, path) = rest.split_once('/').unwrap();
        assert_eq!(path, "mymaster/0");
        sentinel_hosts = Some(hosts.to_string());

        let hc: Vec<&str> = list(&svc["healthcheck"]["test"], name).iter().map(|t| s(t, name)).collect();
        assert!(hc.iter().any(|t| t.ends_with(":8080/readyz")) && port_of(cfg.server.http_listen) == 8080, "{hc:?}");
        let stop = seconds(&svc["stop_grace_period"], name);
        assert!(stop > cfg.server.shutdown_grace_secs as i64 + SESSION_END_SECS, "{name}: stop_grace_period {stop}");
        assert_eq!(svc["read_only"].as_bool(), Some(true), "{name}");
        for p in list(&svc["ports"], name) {
            let p = s(p, name);
            assert!(p.starts_with("127.0.0.1:"), "{name} publishes {p} beyond loopback");
            assert!(host_ports.insert(p.split(':').nth(1).unwrap().to_string()), "{name}: host port of {p} twice");
        }
        metrics_targets.insert(format!("{name}:{}", port_of(cfg.server.metrics_listen.expect("a metrics listener"))));
    }
    assert_eq!(images.len(), 1, "one image: {images:?}");

    // Redis: a primary and its replica, three Sentinels watching it, named in the URL.
    let sentinels: Vec<(String, String)> = sentinel_hosts
        .unwrap()
        .split(',')
        .map(|h| {
            let (host, port) = h.split_once(':').unwrap();
            (host.to_string(), port.to_string())
        })
        .collect();
    assert_eq!(sentinels.len(), 3);
    let primary = sentinels
        .iter()
        .map(|(host, port)| {
            assert_eq!(port, "26379");
            let svc = service(host);
            assert_eq!(command(svc, host), ["sentinel"], "{host} is a Sentinel");
            assert_eq!(s(&svc["entrypoint"][1], host), "/fleet/redis-node.sh");
            service_env(svc, &vars, host)["REDIS_PRIMARY"].clone()
        })
        .collect::<BTreeSet<_>>();
    assert_eq!(primary.len(), 1, "the Sentinels watch one primary: {primary:?}");
    let primary = primary.into_iter().next().unwrap();
    assert_eq!(command(service(&primary), &primary), ["server"]);
    let replicas: Vec<&str> = services
        .iter()
        .filter(|(_, v)| v["environment"]["REDIS_REPLICA_OF"].as_str() == Some(primary.as_str()))
        .map(|(k, _)| s(k, "service"))
        .collect();
    assert_eq!(replicas.len(), 1, "one replica of {primary}");
    // Every Redis node writes its config into a volume of its own (Sentinels rewrite it).
    let mut data_volumes = BTreeSet::new();
    for name in sentinels.iter().map(|(h, _)| h.as_str()).chain([primary.as_str(), replicas[0]]) {
        let svc = service(name);
        assert!(bind_mounts(svc, name).contains_key("/fleet/redis-node.sh"), "{name}");
        let data = list(&svc["volumes"], name).iter().map(|v| s(v, name)).find(|v| v.ends_with(":/data"));
        let volume = data.unwrap_or_else(|| panic!("{name}: no /data volume")).split(':').next().unwrap();
        assert!(fleet["volumes"].as_hash().unwrap().contains_key(&Yaml::String(volume.into())), "{volume}");
        assert!(data_volumes.insert(volume.to_string()), "{name} shares its data volume {volume}");
    }
    // The script is valid shell.
    if let Some(out) = run_tool("sh", &["-n", "deploy/fleet/redis-node.sh"], root()) {
        assert_success(&out, "sh -n deploy/fleet/redis-node.sh");
    }

    // The CRM store: `switchboard crm` on the compose PostgreSQL, at the instances' endpoint.
    let crm_endpoint = crm_endpoint.unwrap();
    let (crm_host, crm_port) =
        crm_endpoint.strip_prefix("http://").and_then(|h| h.split_once(':')).expect("crm.endpoint http://host:port");
    let crm = service(crm_host);
    assert_eq!(command(crm, crm_host)[0], "crm");
    assert_eq!(s(&crm["image"], crm_host), images.iter().next().unwrap());
    let (rel, crm_toml) = mounted_config(crm, crm_host);
    let crm_cfg = load(&crm_toml, &service_env(crm, &vars, crm_host), &rel);
    assert_eq!(crm_cfg.crm.listen.port().to_string(), crm_port);
    assert!(
        crm_cfg.auth.keys.iter().any(|k| k.role == Role::Crm && k.key == CRM_KEY),
        "the store accepts the instances' key"
    );
    let db = crm_cfg.crm.database.strip_prefix("postgres://").expect("the store uses PostgreSQL");
    let db_host = db.split_once('@').unwrap().1.split(':').next().unwrap();
    let pg = service(db_host);
    assert!(s(&pg["image"], db_host).contains("postgres"));
    assert_eq!(service_env(pg, &vars, db_host)["POSTGRES_PASSWORD"], "pgpw0123");
    for name in &instances {
        assert!(!service(name)["depends_on"][crm_host].is_badvalue(), "{name} starts after the CRM store");
    }

    // Prometheus scrapes the three instances' metrics listeners, with the alert rules.
    let prom = service("prometheus");
    let mounts = bind_mounts(prom, "prometheus");
    assert_eq!(mounts["/etc/prometheus/prometheus.yml"], "./prometheus/fleet.yml");
    let scrape = &yaml_docs("deploy/prometheus/fleet.yml")[0];
    for rule_file in list(&scrape["rule_files"], "rule_files") {
        let f = format!("/etc/prometheus/{}", s(rule_file, "rule file"));
        assert!(mounts.contains_key(&f), "{f} is not mounted");
    }
    let job = list(&scrape["scrape_configs"], "scrape_configs")
        .iter()
        .find(|j| j["job_name"].as_str() == Some("switchboard"))
        .expect("the job alerts.yml expects: switchboard");
    let targets: BTreeSet<String> =
        list(&job["static_configs"][0]["targets"], "targets").iter().map(|t| s(t, "target").to_string()).collect();
    assert_eq!(targets, metrics_targets);
    if let Some(out) = run_tool("promtool", &["check", "config", "fleet.yml"], &root().join("deploy/prometheus")) {
        assert_success(&out, "promtool check config deploy/prometheus/fleet.yml");
    }
}

// --- Helm -------------------------------------------------------------------------------------

const CHART: &str = "deploy/helm/switchboard";

/// The actions (`{{ ... }}`) of a template, trimmed of `-` and spaces; panics on an unclosed one.
fn actions(text: &str, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let end = after.find("}}").unwrap_or_else(|| panic!("{what}: an unclosed {{{{"));
        let inner = &after[..end];
        assert!(!inner.contains("{{"), "{what}: {{{{ inside an action: {inner:?}");
        out.push(inner.trim_start_matches('-').trim_end_matches('-').trim().to_string());
        rest = &after[end + 2..];
    }
    assert!(!rest.contains("}}"), "{what}: a }}}} without its {{{{");
    out
}

/// Every `if`/`range`/`with`/`define`/`block` ends, every `else` is inside one.
fn check_blocks(actions: &[String], what: &str) {
    let mut open: Vec<&str> = Vec::new();
    for a in actions {
        if a.starts_with("/*") {
            assert!(a.ends_with("*/"), "{what}: comment {a:?}");
            continue;
        }
        let word = a.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default();
        match word {
            "if" | "range" | "with" | "define" | "block" => open.push(word),
            "else" => {
                assert!(matches!(open.last(), Some(&("if" | "range" | "with"))), "{what}: {a:?} outside if/range/with");
            }
            "end" => {
                open.pop().unwrap_or_else(|| panic!("{what}: an end too many"));
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "{what}: unclosed {open:?}");
}

/// The names in `keyword "name"` (define, include, template) of an action.
fn quoted_after(action: &str, keyword: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = action;
    while let Some(i) = rest.find(keyword) {
        let tail = &rest[i + keyword.len()..];
        let end = tail.find('"').expect("a closing quote");
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// `.Values.a.b.c` paths the actions use.
fn values_paths(actions: &[String]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for a in actions {
        let mut rest = a.as_str();
        while let Some(i) = rest.find(".Values.") {
            let tail = &rest[i + ".Values.".len()..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(tail.len());
            let path: Vec<String> = tail[..end].split('.').filter(|p| !p.is_empty()).map(str::to_string).collect();
            out.insert(path);
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn helm_chart_is_consistent_with_its_values_and_the_daemons_config() {
    let dir = root().join(CHART);
    let chart = &yaml_docs(format!("{CHART}/Chart.yaml"))[0];
    assert_eq!(s(&chart["apiVersion"], "apiVersion"), "v2");
    assert_eq!(s(&chart["name"], "name"), "switchboard");
    s(&chart["version"], "version");
    s(&chart["appVersion"], "appVersion");
    let values = &yaml_docs(format!("{CHART}/values.yaml"))[0];
    assert!(int(&values["replicaCount"], "replicaCount") >= 2);
    assert!(read(format!("{CHART}/README.md")).contains("`redis.cluster.nodes`"));

    // Templates: balanced actions, known includes, and no `.Values` path values.yaml lacks.
    let mut defined = BTreeSet::new();
    let mut included = BTreeSet::new();
    let mut templates = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("templates")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let text = read(format!("{CHART}/templates/{name}"));
        let acts = actions(&text, &name);
        check_blocks(&acts, &name);
        for a in &acts {
            defined.extend(quoted_after(a, "define \""));
            included.extend(quoted_after(a, "include \""));
            included.extend(quoted_after(a, "template \""));
        }
        for path in values_paths(&acts) {
            let mut y = values;
            for (i, p) in path.iter().enumerate() {
                y = &y[p.as_str()];
                assert!(!y.is_badvalue(), "{name}: .Values.{} is not in values.yaml", path[..=i].join("."));
            }
        }
        templates.insert(name, text);
    }
    for want in [
        "_helpers.tpl",
        "NOTES.txt",
        "deployment.yaml",
        "services.yaml",
        "configmap.yaml",
        "secret.yaml",
        "pdb.yaml",
        "crm-deployment.yaml",
        "crm-service.yaml",
    ] {
        assert!(templates.contains_key(want), "templates/{want}");
    }
    included.retain(|i| !i.contains('/')); // `include (print $.Template.BasePath "/configmap.yaml")`
    for name in &included {
        assert!(defined.contains(name), "include {name:?} of no define");
    }
    // Redis Cluster renders a redis+cluster:// URL, and refuses what a cluster cannot do.
    let helpers = &templates["_helpers.tpl"];
    assert!(helpers.contains(r#"printf "redis+cluster://%s%s" $auth (join "," $r.cluster.nodes)"#));
    assert!(helpers.contains(r#"fail "redis.cluster.nodes: name a few of the cluster's nodes"#));
    assert!(helpers.contains(r#"fail "redis.db: a Redis Cluster has only database 0""#));
    for t in ["configmap.yaml", "deployment.yaml"] {
        assert!(
            templates[t].starts_with(r#"{{- include "switchboard.validate" . -}}"#),
            "{t} validates the values first"
        );
    }

    // The default config.toml with the sections the chart writes in front of it (configmap.yaml
    // with the default values) loads with the daemon's loader; it must not repeat those sections.
    let body = s(&values["config"]["toml"], "config.toml");
    for table in ["[server]", "[redis]", "[crm]"] {
        assert!(!body.lines().any(|l| l.trim() == table), "config.toml must not have {table}: the chart writes it");
    }
    let grace = int(&values["shutdownGraceSecs"], "shutdownGraceSecs");
    let crm_extra: String = values["config"]["crm"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{} = {}\n", s(k, "config.crm"), serde_json::to_string(s(v, "config.crm")).unwrap()))
        .collect();
    let standalone = &values["redis"]["standalone"];
    let rendered = format!(
        "[server]\ngrpc_listen = \"0.0.0.0:50051\"\nhttp_listen = \"0.0.0.0:8080\"\nmetrics_listen = \"0.0.0.0:9100\"\n\
         instance_id = \"\"\nshutdown_grace_secs = {grace}\n\n\
         [redis]\nurl = \"redis://{}:{}/{}\"\nkey_prefix = \"{}\"\ndomain = \"{}\"\n\n\
         [crm]\nenabled = true\nendpoint = \"http://switchboard-crm:50052\"\napi_key = \"${{SWITCHBOARD_CRM_API_KEY}}\"\n{crm_extra}\n{body}",
        s(&standalone["host"], "host"),
        int(&standalone["port"], "port"),
        int(&values["redis"]["db"], "db"),
        s(&values["redis"]["keyPrefix"], "keyPrefix"),
        s(&values["redis"]["domain"], "domain"),
    );
    let cfg = load(&rendered, &env(&[("SWITCHBOARD_CRM_API_KEY", CRM_KEY)]), "the chart's default switchboard.toml");
    assert_eq!(cfg.server.shutdown_grace_secs as i64, grace);
    // terminationGracePeriodSeconds = preStopSleepSecs + shutdownGraceSecs + 15 (deployment.yaml).
    assert!(templates["deployment.yaml"].contains(
        "terminationGracePeriodSeconds: {{ add (int .Values.preStopSleepSecs) (int .Values.shutdownGraceSecs) 15 }}"
    ));
    let term_grace = int(&values["preStopSleepSecs"], "preStopSleepSecs") + grace + 15;
    assert!(term_grace > int(&values["preStopSleepSecs"], "preStopSleepSecs") + grace + SESSION_END_SECS);

    // Where helm is installed: lint, render with Sentinel and with Redis Cluster.
    let base = [
        "--set",
        "secrets.crmApiKey=crm-key-0123456789abcdef0123456789abcdef",
        "--set",
        "crm.builtin.database=postgres://switchboard:pw@db:5432/switchboard",
    ];
    let Some(out) = run_tool("helm", &[&["lint", CHART][..], &base[..]].concat(), root()) else {
        eprintln!("the Helm chart was checked statically only: its templates were not rendered");
        return;
    };
    assert_success(&out, "helm lint");
    let sentinel = [
        "--set",
        "redis.mode=sentinel",
        "--set",
        "redis.sentinel.sentinels={s-0:26379,s-1:26379,s-2:26379}",
        "--set",
        "redis.auth=true",
        "--set",
        "secrets.redisPassword=pw",
    ];
    let out = run_tool("helm", &[&["template", "sb", CHART][..], &base[..], &sentinel[..]].concat(), root()).unwrap();
    assert_success(&out, "helm template (sentinel)");
    let docs = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).expect("helm's output is YAML");
    let cm = docs.iter().find(|d| d["kind"].as_str() == Some("ConfigMap")).expect("a ConfigMap");
    let cfg = load(
        s(&cm["data"]["switchboard.toml"], "switchboard.toml"),
        &env(&[("SWITCHBOARD_CRM_API_KEY", CRM_KEY), ("REDIS_PASSWORD", "pw")]),
        "the rendered switchboard.toml",
    );
    assert_eq!(cfg.redis.url, "redis+sentinel://:pw@s-0:26379,s-1:26379,s-2:26379/mymaster/0");
    let out =
        run_tool("helm", &[&["template", "sb", CHART, "--set", "redis.mode=cluster"][..], &base[..]].concat(), root())
            .unwrap();
    assert!(!out.status.success(), "redis.mode=cluster without nodes must not render");
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis.cluster.nodes"));
    let cluster = ["--set", "redis.mode=cluster", "--set", "redis.cluster.nodes={c-0:6379,c-1:6379}"];
    let out = run_tool("helm", &[&["template", "sb", CHART][..], &base[..], &cluster[..]].concat(), root()).unwrap();
    assert_success(&out, "helm template (cluster)");
    let docs = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).expect("helm's output is YAML");
    let cm = docs.iter().find(|d| d["kind"].as_str() == Some("ConfigMap")).expect("a ConfigMap");
    let cfg = load(
        s(&cm["data"]["switchboard.toml"], "switchboard.toml"),
        &env(&[("SWITCHBOARD_CRM_API_KEY", CRM_KEY)]),
        "the rendered switchboard.toml (cluster)",
    );
    assert_eq!(cfg.redis.url, "redis+cluster://c-0:6379,c-1:6379");
}
