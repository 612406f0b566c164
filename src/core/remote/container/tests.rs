use std::sync::Arc;

use super::engine::State;
use super::*;
use crate::core::command::{CommandSpec, Env};
use crate::core::os::spawn::Stdio;

fn fresh(over: impl FnOnce(&mut ContainerConfig)) -> ContainerConfig {
    let mut c = ContainerConfig { image: Some("localhost/img:1".into()), ..Default::default() };
    over(&mut c);
    c
}

fn strings(v: &[Bytes]) -> Vec<String> {
    v.iter().map(|b| b.to_string_lossy().into_owned()).collect()
}

/// The client's argv for `command`, with the engine taken as known.
fn argv_of(c: ContainerConfig, program: &str, command: CommandSpec, env: &[(&str, &str)], dir: Option<&str>) -> (Vec<String>, ContainerProcess) {
    let e = Arc::new(Engine::new(c).unwrap());
    *e.state.lock().unwrap() = State::Ready { program: program.into() };
    let env: Vec<(Bytes, Bytes)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let (mut req, mut p) =
        e.prepare(&command, dir.map(Path::new), Some(&env), [Stdio::Pipe; 3], None).unwrap();
    p.complete(&mut req).unwrap();
    (strings(&req.command.argv()), p)
}

#[test]
fn fresh_containers_get_every_limit_as_one_argument_each() {
    let c = fresh(|c| {
        c.engine = Some("docker".into());
        c.host = Some("tcp://10.0.0.5:2375".into());
        c.engine_args = vec!["--config".into(), "/etc/d".into()];
        c.network_mode = Some("none".into());
        c.volumes = vec!["/srv/data:/data:ro".into()];
        c.user = Some("1000:1000".into());
        c.memory_limit = Some("256m".into());
        c.cpu_quota = Some(50000);
        c.pids_limit = Some(64);
        c.read_only_rootfs = Some(true);
        c.no_new_privileges = Some(true);
        c.cap_drop = vec!["ALL".into()];
        c.cap_add = vec!["NET_BIND_SERVICE".into()];
        c.tmpfs = vec!["/tmp:size=64m".into()];
    });
    let (argv, p) = argv_of(c, "docker", CommandSpec::Shell("echo $A; it's".into()), &[("A", "x y=z")], Some("/work"));
    let cid = p.cidfile.clone().unwrap();
    let want = [
        "docker", "--host=tcp://10.0.0.5:2375", "--config", "/etc/d", "run", "--rm", "--interactive", "--init",
        "--read-only", &format!("--name={}", p.name), &format!("--cidfile={}", cid.display()),
        "--security-opt=no-new-privileges", "--network=none", "--user=1000:1000", "--memory=256m",
        "--cpu-quota=50000", "--pids-limit=64", "--volume=/srv/data:/data:ro", "--cap-drop=ALL",
        "--cap-add=NET_BIND_SERVICE", "--tmpfs=/tmp:size=64m", "--workdir=/work", "--env=A=x y=z", "--",
        "localhost/img:1", "/bin/sh", "-c", "echo $A; it's",
    ];
    assert_eq!(argv, want);
    // docker: no --pidfile, the cidfile is what start() waits for.
    assert_eq!(p.marker.as_ref(), Some(&cid));
    assert!(p.name.starts_with("lua-exec-") && p.name.len() == 25, "{}", p.name);
}

#[test]
fn local_podman_writes_a_pidfile_and_a_remote_one_does_not() {
    let (argv, p) = argv_of(fresh(|_| {}), "podman", CommandSpec::Argv(vec!["true".into()]), &[], None);
    let pid = p.pidfile.clone().unwrap();
    assert!(argv.contains(&format!("--pidfile={}", pid.display())), "{argv:?}");
    assert_eq!(p.marker.as_ref(), Some(&pid));
    assert_eq!(&argv[argv.len() - 3..], ["--", "localhost/img:1", "true"]);
    let (argv, p) = argv_of(fresh(|c| c.host = Some("unix:///run/podman.sock".into())), "/usr/bin/podman",
        CommandSpec::Argv(vec!["true".into()]), &[], None);
    assert_eq!(argv[1], "--url=unix:///run/podman.sock");
    assert!(!argv.iter().any(|a| a.starts_with("--pidfile")), "{argv:?}");
    assert_eq!(p.marker, p.cidfile);
    // auto_remove = false: no --rm.
    let (argv, _) = argv_of(fresh(|c| c.auto_remove = Some(false)), "podman", CommandSpec::Argv(vec!["true".into()]), &[], None);
    assert!(!argv.iter().any(|a| a == "--rm"), "{argv:?}");
}

#[test]
fn signals_and_stops_name_the_container_and_pass_values_as_arguments() {
    let (_, p) = argv_of(fresh(|c| c.engine_args = vec!["--root".into(), "/x y".into()]), "podman",
        CommandSpec::Argv(vec!["sleep".into(), "9".into()]), &[], None);
    let s = strings(&p.signal_argv(libc::SIGTERM));
    assert_eq!(&s[..2], ["/bin/sh", "-c"]);
    assert_eq!(&s[3..], ["sh", "TERM", &p.name, "podman", "--root", "/x y"]);
    assert_eq!(strings(&p.stop_argv(false)), ["podman", "--root", "/x y", "rm", "--force", "--ignore", "-t", "1", &p.name]);
    assert_eq!(strings(&p.stop_argv(true))[7], "0");
    // The client's environment reaches the background commands too.
    let (_, e) = argv_of(fresh(|c| c.engine_env = Some(Env::new("engine_env", vec![("CONTAINERS_CONF".into(), "/x/c.conf".into())]).unwrap())), "podman",
        CommandSpec::Argv(vec!["true".into()]), &[], None);
    assert_eq!(&strings(&e.stop_argv(true))[..4], ["/usr/bin/env", "--", "CONTAINERS_CONF=/x/c.conf", "podman"]);
    assert_eq!(&strings(&e.signal_argv(9))[..4], ["/usr/bin/env", "--", "CONTAINERS_CONF=/x/c.conf", "/bin/sh"]);
    let (_, d) = argv_of(fresh(|_| {}), "docker", CommandSpec::Argv(vec!["true".into()]), &[], None);
    assert_eq!(strings(&d.stop_argv(true)), ["docker", "rm", "--force", &d.name]);
    let gentle = strings(&d.stop_argv(false));
    assert_eq!(&gentle[3..], ["sh", "1", &d.name, "docker"]);
    // The scripts themselves run: with a fake client that records its
    // arguments, each value arrives as one argument.
    let dir = std::env::temp_dir().join(format!("lua-exec-fake-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let fake = dir.join("docker");
    std::fs::write(&fake, format!("#!/bin/sh\nfor a; do printf '[%s]' \"$a\"; done >>'{}'; echo >>'{}'\n", log.display(), log.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let mut argv = gentle.clone();
    argv[6] = fake.to_string_lossy().into_owned();
    let st = std::process::Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(st.success());
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(got, format!("[stop][-t][1][{0}]\n[rm][--force][{0}]\n", d.name));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exec_mode_runs_the_wrapper_and_signals_its_group() {
    let c = ContainerConfig { container: Some("box".into()), user: Some("app".into()), ..Default::default() };
    let (argv, p) = argv_of(c, "podman", CommandSpec::Argv(vec!["echo".into(), "a b".into()]), &[("K", "v")], Some("/srv"));
    assert_eq!(&argv[..7], ["podman", "exec", "--interactive", "--user=app", "--env=K=v", "--", "box"]);
    assert_eq!(&argv[7..9], ["sh", "-c"]);
    assert!(argv[9].contains("cd -- '/srv'") && argv[9].contains("env -- 'echo' 'a b'"), "{}", argv[9]);
    assert_eq!(&argv[10..], ["lua-exec", &p.token]);
    assert_eq!(p.marker, None);
    let s = strings(&p.signal_argv(libc::SIGINT));
    assert_eq!(&s[..6], ["podman", "exec", "--user=app", "--", "box", "sh"]);
    assert!(s[7].contains(&p.token) && s[7].ends_with("kill -s INT -- -$p"), "{}", s[7]);
    // The wrapper's own programs: a program name env would misread.
    let e = Arc::new(Engine::new(ContainerConfig { container: Some("box".into()), ..Default::default() }).unwrap());
    assert!(e.prepare(&CommandSpec::Argv(vec!["A=1".into()]), None, None, [Stdio::Pipe; 3], None).is_err());
}

#[test]
fn configurations_are_checked_field_by_field() {
    let bad: Vec<(ContainerConfig, &str)> = vec![
        (ContainerConfig::default(), "image is required"),
        (fresh(|c| c.container = Some("x".into())), "cannot both be set"),
        (fresh(|c| c.image = Some("-x".into())), "image '-x'"),
        (fresh(|c| c.image = Some("a b".into())), "image 'a b'"),
        (fresh(|c| c.engine = Some("nerdctl".into())), "engine must be"),
        (fresh(|c| c.engine_args = vec!["--url=tcp://x".into()]), "use the option host"),
        (fresh(|c| c.engine_args = vec!["-H".into()]), "use the option host"),
        (fresh(|c| c.volumes = vec!["data:/data".into()]), "volumes"),
        (fresh(|c| c.volumes = vec!["/a:/b:rx".into()]), "volumes"),
        (fresh(|c| c.volumes = vec!["/a:/b:ro:x".into()]), "volumes"),
        (fresh(|c| c.user = Some("root; x".into())), "user"),
        (fresh(|c| c.memory_limit = Some("0".into())), "memory_limit"),
        (fresh(|c| c.memory_limit = Some("12x".into())), "memory_limit"),
        (fresh(|c| c.cap_add = vec!["NET RAW".into()]), "cap_add"),
        (fresh(|c| c.tmpfs = vec!["tmp".into()]), "tmpfs"),
        (fresh(|c| c.tmpfs = vec!["/tmp:size=1m;x".into()]), "tmpfs"),
        (fresh(|c| c.network_mode = Some("".into())), "network_mode"),
        (fresh(|c| c.engine_env = Some(Env::new("engine_env", vec![("A-B".into(), "1".into())]).unwrap())), "engine_env: env variable name 'A-B'"),
        (fresh(|c| c.engine = Some("/opt/a=b/docker".into())), "engine must be"),
        (ContainerConfig { container: Some("x".into()), pids_limit: Some(5), ..Default::default() }, "pids_limit applies"),
    ];
    for (c, want) in bad {
        let e = c.validate().unwrap_err();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    let good = fresh(|c| {
        c.memory_limit = Some("268435456".into());
        c.volumes = vec!["/a:/b".into(), "/c:/d:rw".into()];
        c.tmpfs = vec!["/tmp".into(), "/run:rw,size=1m,mode=1777".into()];
        c.user = Some("65534".into());
        c.engine = Some("/usr/local/bin/docker".into());
    });
    assert!(good.validate().is_ok());
}

#[test]
fn work_dirs_are_absolute_and_stay_within_by_name() {
    let within = Some(Path::new("/srv/build"));
    assert_eq!(check_work_dir(Path::new("/srv/build/a/./b"), within, "x:y").unwrap(), Path::new("/srv/build/a/b"));
    assert!(check_work_dir(Path::new("/srv/build/../etc"), within, "x:y").unwrap_err().contains("outside the work_dir_within"));
    assert!(check_work_dir(Path::new("/srv/buildx"), within, "x:y").is_err());
    assert!(check_work_dir(Path::new("rel"), None, "x:y").unwrap_err().contains("absolute"));
}

#[test]
fn engine_messages_keep_the_error_lines() {
    let podman = b"Trying to pull localhost/x:1...\ntime=\"...\" level=warning msg=\"Failed, retrying\"\nError: initializing source docker://localhost/x:1: connection refused\n";
    assert_eq!(engine_message(podman), "Error: initializing source docker://localhost/x:1: connection refused");
    let docker = b"docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n\nRun 'docker run --help' for more information\n";
    assert_eq!(engine_message(docker), "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
    assert_eq!(engine_message(b"a\nb\nc\nd\n"), "b; c; d");
    assert_eq!(Flavour::of(OsStr::new("/opt/podman-4/bin/podman")), Flavour::Podman);
    assert_eq!(Flavour::of(OsStr::new("docker")), Flavour::Docker);
}
