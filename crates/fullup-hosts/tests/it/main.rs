//! Hosts as the multi-node test and bench use them: each reaches the root namespace
//! over its own link (and a forwarded server through it), and nothing is left behind,
//! neither by a cluster dropped nor by a process that died without dropping one.
//!
//! Needs root and iproute2: outside CI a test skips with a notice without them.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;

use fullup_hosts::{Cluster, Hosts, check_support};

/// Whether this machine can make hosts (and, in CI, that it must).
fn supported(test: &str) -> bool {
    let support = check_support();
    fullup_testkit::require(support.is_ok(), &format!("{support:?}"), test)
}

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(output.status.success(), "ip {}: {output:?}", args.join(" "));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Answers each connection with what it read first, then closes it.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0; 4];
            if stream.read_exact(&mut buf).is_ok() {
                let _ = stream.write_all(&buf);
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_reach_a_forwarded_server_over_their_links_and_vanish_on_drop() {
    if !supported("hosts_reach_a_forwarded_server_over_their_links_and_vanish_on_drop") {
        return;
    }
    let port = echo_server();
    let url = format!("postgres://test@127.0.0.1:{port}/db");
    let cluster = Cluster::start(2, &url).await.expect("two hosts");
    let forwarded = url::Url::parse(cluster.database_url()).expect("a URL");
    let (root, forwarded_port) = (
        forwarded.host_str().expect("a host").to_owned(),
        forwarded.port().expect("a port").to_string(),
    );
    assert_eq!(root, cluster.root_ip().to_string());
    for host in cluster.hosts() {
        let own = String::from_utf8(
            host.command("ip")
                .args(["-4", "-o", "addr", "show", "dev", "eth0"])
                .output()
                .expect("ip in the host")
                .stdout,
        )
        .expect("text");
        assert!(own.contains(&format!("{}/30", host.ip())), "{own}");
        let script = "exec 3<>/dev/tcp/$0/$1; printf ping >&3; head -c 4 <&3";
        let answer = host
            .command("bash")
            .args(["-c", script, &root, &forwarded_port])
            .output()
            .expect("bash in the host");
        assert_eq!(
            String::from_utf8_lossy(&answer.stdout),
            "ping",
            "{answer:?}"
        );
    }
    let names: Vec<String> = cluster
        .hosts()
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    let gateways: Vec<String> = cluster
        .hosts()
        .iter()
        .map(|h| format!("inet {}/", h.gateway()))
        .collect();
    drop(cluster);
    let namespaces = ip(&["netns", "list"]);
    let addresses = ip(&["-4", "-o", "addr", "show"]);
    for name in &names {
        assert!(!namespaces.contains(name.as_str()), "{name} is still there");
    }
    for gateway in &gateways {
        assert!(
            !addresses.contains(gateway.as_str()),
            "{gateway} is still there"
        );
    }
}

#[test]
fn what_a_dead_process_left_is_removed_by_the_next() {
    if !supported("what_a_dead_process_left_is_removed_by_the_next") {
        return;
    }
    let dead = (2..4_194_304u32)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .expect("a pid nobody has");
    let (name, link) = (format!("fullup-{dead}-0"), format!("fu{dead}x0"));
    ip(&["netns", "add", &name]);
    // Another test making hosts at this moment may remove these half made: the end
    // state checked is the same.
    let leftover = [
        vec![
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ],
        vec!["addr", "add", "10.231.255.253/30", "dev", &link],
    ];
    for args in leftover {
        let _ = Command::new("ip").args(args).output();
    }
    let hosts = Hosts::create(1).expect("a host");
    assert!(
        !ip(&["netns", "list"]).contains(&name),
        "{name} is still there"
    );
    assert!(
        !ip(&["-o", "link", "show"]).contains(&link),
        "{link} is still there"
    );
    drop(hosts);
}
