//! The server over real UDP and TCP sockets on 127.0.0.x, queried with hickory's client and
//! resolver (an independent encoder/decoder, not ours). Upstreams are other `DnsServer`
//! instances or sockets the test owns; no query ever leaves the machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use flotilla_dns::{DnsConfig, DnsServer, View};
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::{DnsResponse, Edns, Message, Query, ResponseCode};
use hickory_net::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::NetError;
use tokio::net::UdpSocket;

/// Generous: only reached when something is broken, never asserted as a duration.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

fn ip(text: &str) -> IpAddr {
    IpAddr::from_str(text).unwrap()
}

fn any_port(host: &str) -> SocketAddr {
    SocketAddr::new(ip(host), 0)
}

fn view(name: &str, listen: SocketAddr, records: &[(&str, &[&str])]) -> View {
    View {
        name: name.to_string(),
        listen: vec![listen],
        records: records
            .iter()
            .map(|(name, addrs)| (name.to_string(), addrs.iter().map(|a| ip(a)).collect()))
            .collect::<BTreeMap<_, _>>(),
        clients: BTreeMap::new(),
    }
}

/// A server serving `config`; panics (test failure) if any address failed to bind.
async fn serve(config: &DnsConfig) -> DnsServer {
    let server = DnsServer::new();
    let errors = server.apply(config).await;
    assert!(errors.is_empty(), "bind errors: {errors:?}");
    server
}

fn bound(server: &DnsServer, configured: SocketAddr) -> SocketAddr {
    server
        .local_addr(configured)
        .expect("configured address is bound")
}

async fn udp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    let conn = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(timeout))
        .with_max_retries(0)
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    let bg = tokio::spawn(bg);
    let result = client
        .query(Name::from_str(name).unwrap(), DNSClass::IN, qtype)
        .await;
    bg.abort();
    result
}

async fn tcp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Result<DnsResponse, NetError> {
    let (stream, sender) = TcpClientStream::new(
        server,
        None,
        Some(CLIENT_TIMEOUT),
        TokioRuntimeProvider::new(),
    );
    let (mut client, bg) = Client::<TokioRuntimeProvider>::new(stream.await?, sender);
    let bg = tokio::spawn(bg);
    let result = client
        .query(Name::from_str(name).unwrap(), DNSClass::IN, qtype)
        .await;
    bg.abort();
    result
}

async fn udp_a(server: SocketAddr, name: &str) -> DnsResponse {
    udp_query(server, name, RecordType::A, CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("UDP query for {name} failed: {e}"))
}

fn sorted_ips(response: &DnsResponse) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

#[tokio::test]
async fn answers_a_records_over_udp_and_tcp_case_insensitively_with_ttl_zero() {
    let listen = any_port("127.0.0.1");
    let config = DnsConfig {
        views: vec![view(
            "front",
            listen,
            &[
                ("api", &["10.10.0.2"]),
                ("tasks.api", &["10.10.0.3", "10.10.0.4"]),
                ("shop_api", &["10.10.0.5"]),
            ],
        )],
        upstreams: vec![],
    };
    let server = serve(&config).await;
    let addr = bound(&server, listen);

    let response = udp_a(addr, "API.").await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(sorted_ips(&response), vec![ip("10.10.0.2")]);
    assert!(response.answers.iter().all(|r| r.ttl == 0));

    let response = tcp_query(addr, "Tasks.Api", RecordType::A).await.unwrap();
    assert_eq!(
        sorted_ips(&response),
        vec![ip("10.10.0.3"), ip("10.10.0.4")]
    );

    let response = udp_a(addr, "shop_api").await;
    assert_eq!(sorted_ips(&response), vec![ip("10.10.0.5")]);
}

#[tokio::test]
async fn replica_order_rotates_between_queries() {
    let listen = any_port("127.0.0.1");
    let replicas = ["10.11.0.2", "10.11.0.3", "10.11.0.4"];
    let server = serve(&DnsConfig {
        views: vec![view("n", listen, &[("tasks.web", &replicas)])],
        upstreams: vec![],
    })
    .await;
    let addr = bound(&server, listen);
    let mut firsts = Vec::new();
    for _ in 0..replicas.len() {
        let response = udp_a(addr, "tasks.web").await;
        assert_eq!(response.answers.len(), replicas.len());
        match &response.answers[0].data {
            RData::A(a) => firsts.push(a.0),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut distinct = firsts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        replicas.len(),
        "first addresses: {firsts:?}"
    );
}

#[tokio::test]
async fn a_real_resolver_client_resolves_service_names() {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::Resolver;

    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view(
            "n",
            listen,
            &[("tasks.api", &["10.12.0.2", "10.12.0.3"])],
        )],
        upstreams: vec![],
    })
    .await;
    let addr = bound(&server, listen);
    let mut name_server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut name_server.connections {
        connection.port = addr.port();
    }
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .unwrap();
    let mut ips: Vec<IpAddr> = resolver
        .lookup_ip("tasks.api.")
        .await
        .unwrap()
        .iter()
        .collect();
    ips.sort();
    assert_eq!(ips, vec![ip("10.12.0.2"), ip("10.12.0.3")]);
}

#[tokio::test]
async fn known_names_answer_other_types_and_empty_services_with_noerror_and_no_records() {
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view(
            "n",
            listen,
            &[("api", &["10.13.0.2"]), ("tasks.down", &[])],
        )],
        // Would turn any accidental forward into a visible SERVFAIL.
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    })
    .await;
    let addr = bound(&server, listen);
    for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let response = udp_query(addr, "api", qtype, CLIENT_TIMEOUT).await.unwrap();
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{qtype:?}"
        );
        assert!(response.answers.is_empty(), "{qtype:?}");
    }
    let response = udp_a(addr, "tasks.down").await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
}

/// An upstream is just another server with its own records.
async fn fake_upstream(records: &[(&str, &[&str])]) -> (DnsServer, SocketAddr) {
    let listen = any_port("127.0.0.1");
    let upstream = serve(&DnsConfig {
        views: vec![view("upstream", listen, records)],
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    })
    .await;
    let addr = bound(&upstream, listen);
    (upstream, addr)
}

#[tokio::test]
async fn unknown_names_are_forwarded_and_relayed_over_udp_and_tcp() {
    let (_upstream, upstream_addr) = fake_upstream(&[("external.example", &["192.0.2.10"])]).await;
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view("n", listen, &[("api", &["10.14.0.2"])])],
        upstreams: vec![upstream_addr],
    })
    .await;
    let addr = bound(&server, listen);

    let response = udp_a(addr, "External.Example.").await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(sorted_ips(&response), vec![ip("192.0.2.10")]);

    let response = tcp_query(addr, "external.example", RecordType::A)
        .await
        .unwrap();
    assert_eq!(sorted_ips(&response), vec![ip("192.0.2.10")]);
}

#[tokio::test]
async fn a_dead_upstream_is_skipped_for_the_next_one() {
    let (_upstream, upstream_addr) = fake_upstream(&[("external.example", &["192.0.2.11"])]).await;
    // Nothing listens on this port once the socket is dropped: refused at once.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view("n", listen, &[])],
        upstreams: vec![closed, upstream_addr],
    })
    .await;
    let addr = bound(&server, listen);
    for _ in 0..2 {
        let response = udp_a(addr, "external.example").await;
        assert_eq!(sorted_ips(&response), vec![ip("192.0.2.11")]);
    }
}

#[tokio::test]
async fn truncated_upstream_answers_are_retried_over_tcp() {
    // 150 addresses: about 2.4 kB, over both 512 and the client's EDNS size, so the upstream
    // truncates over UDP and the forwarder has to fetch it over TCP.
    let many: Vec<String> = (0..150u8)
        .map(|i| format!("192.0.2.{}", u16::from(i) + 1))
        .collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let (_upstream, upstream_addr) = fake_upstream(&[("big.example", &many_refs)]).await;
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view("n", listen, &[])],
        upstreams: vec![upstream_addr],
    })
    .await;
    let addr = bound(&server, listen);

    let response = tcp_query(addr, "big.example", RecordType::A).await.unwrap();
    assert_eq!(response.answers.len(), many.len());

    // A UDP client taking 4096 bytes: the upstream truncates at its 1232, the forwarder
    // fetches the full answer over TCP and relays all of it over UDP.
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii("big.example.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    query.set_edns(edns);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    socket.send(&query.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let len = tokio::time::timeout(CLIENT_TIMEOUT, socket.recv(&mut buf))
        .await
        .expect("no answer over UDP")
        .unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, query.metadata.id);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), many.len());

    // Over UDP the client cannot take it: it is told to come back over TCP.
    let response = udp_a(addr, "big.example").await;
    assert!(response.metadata.truncation);
    assert!(response.answers.is_empty());
}

#[tokio::test]
async fn upstream_failures_and_timeouts_give_servfail() {
    // Nothing listens on the port: refused at once.
    let closed = {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.local_addr().unwrap()
    };
    // Bound but never answers: the forward budget runs out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    for upstreams in [vec![closed], vec![silent_addr], vec![closed, silent_addr]] {
        let listen = any_port("127.0.0.1");
        let server = serve(&DnsConfig {
            views: vec![view("n", listen, &[])],
            upstreams: upstreams.clone(),
        })
        .await;
        let addr = bound(&server, listen);
        let response = udp_a(addr, "nowhere.example").await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::ServFail,
            "upstreams {upstreams:?}"
        );
    }
    drop(silent);
}

#[tokio::test]
async fn each_view_answers_only_from_its_own_records() {
    // The upstream knows "db" under a different address, so a leak between views would show.
    let (_upstream, upstream_addr) = fake_upstream(&[("db", &["192.0.2.99"])]).await;
    let listen_a = any_port("127.0.0.2");
    let listen_b = any_port("127.0.0.3");
    let server = serve(&DnsConfig {
        views: vec![
            view("net-a", listen_a, &[("web", &["10.15.0.2"])]),
            view(
                "net-b",
                listen_b,
                &[("db", &["10.16.0.2"]), ("web", &["10.16.0.3"])],
            ),
        ],
        upstreams: vec![upstream_addr],
    })
    .await;
    let a = bound(&server, listen_a);
    let b = bound(&server, listen_b);
    assert_eq!(sorted_ips(&udp_a(b, "db").await), vec![ip("10.16.0.2")]);
    assert_eq!(sorted_ips(&udp_a(a, "db").await), vec![ip("192.0.2.99")]);
    assert_eq!(sorted_ips(&udp_a(a, "web").await), vec![ip("10.15.0.2")]);
    assert_eq!(sorted_ips(&udp_a(b, "web").await), vec![ip("10.16.0.3")]);
}

#[tokio::test]
async fn applied_record_changes_are_seen_by_the_next_query() {
    let listen = any_port("127.0.0.1");
    let mut config = DnsConfig {
        views: vec![view(
            "n",
            listen,
            &[("tasks.api", &["10.17.0.2", "10.17.0.3"])],
        )],
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    };
    let server = serve(&config).await;
    let addr = bound(&server, listen);
    assert_eq!(udp_a(addr, "tasks.api").await.answers.len(), 2);

    config.views[0]
        .records
        .insert("tasks.api".into(), vec![ip("10.17.0.3")]);
    config.views[0]
        .records
        .insert("new".into(), vec![ip("10.17.0.9")]);
    assert!(server.apply(&config).await.is_empty());
    assert_eq!(bound(&server, listen), addr, "unchanged listener is kept");
    assert_eq!(
        sorted_ips(&udp_a(addr, "tasks.api").await),
        vec![ip("10.17.0.3")]
    );
    assert_eq!(sorted_ips(&udp_a(addr, "new").await), vec![ip("10.17.0.9")]);
    let response = tcp_query(addr, "tasks.api", RecordType::A).await.unwrap();
    assert_eq!(sorted_ips(&response), vec![ip("10.17.0.3")]);
}

#[tokio::test]
async fn removing_a_listen_address_closes_it() {
    let keep = any_port("127.0.0.4");
    let drop_me = any_port("127.0.0.5");
    let mut config = DnsConfig {
        views: vec![
            view("keep", keep, &[("api", &["10.18.0.2"])]),
            view("gone", drop_me, &[("api", &["10.19.0.2"])]),
        ],
        upstreams: vec![],
    };
    let server = serve(&config).await;
    let kept = bound(&server, keep);
    let gone = bound(&server, drop_me);
    assert_eq!(udp_a(gone, "api").await.answers.len(), 1);
    // A TCP connection open before removal must be closed too.
    let open_tcp = tokio::net::TcpStream::connect(gone).await.unwrap();

    config.views.pop();
    assert!(server.apply(&config).await.is_empty());
    assert_eq!(server.local_addr(drop_me), None);
    let result = udp_query(gone, "api", RecordType::A, Duration::from_millis(500)).await;
    assert!(
        result.is_err(),
        "removed listener still answered: {result:?}"
    );
    assert!(tokio::net::TcpStream::connect(gone).await.is_err());
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(CLIENT_TIMEOUT, async {
        use tokio::io::AsyncReadExt;
        let mut open_tcp = open_tcp;
        open_tcp.read(&mut buf).await
    })
    .await
    .expect("open TCP connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)));
    assert_eq!(sorted_ips(&udp_a(kept, "api").await), vec![ip("10.18.0.2")]);
}

#[tokio::test]
async fn malformed_packets_are_dropped_or_formerr_and_the_server_keeps_serving() {
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view("n", listen, &[("api", &["10.20.0.2"])])],
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    })
    .await;
    let addr = bound(&server, listen);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    let mut buf = [0u8; 4096];

    // Too short to carry a header: dropped.
    socket.send(&[0xde, 0xad, 0xbe]).await.unwrap();
    // A header claiming one question, followed by garbage: FORMERR with the same id.
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 40]);
    socket.send(&garbage).await.unwrap();
    let len = tokio::time::timeout(CLIENT_TIMEOUT, socket.recv(&mut buf))
        .await
        .expect("no FORMERR for a malformed query")
        .unwrap();
    assert_eq!(
        &buf[..2],
        &[0x12, 0x34],
        "reply to the short packet or wrong id"
    );
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // A packet claiming to be a response is never answered; then a compression loop.
    let mut response_bits = garbage.clone();
    response_bits[2] |= 0x80;
    socket.send(&response_bits).await.unwrap();
    let mut pointer_loop = vec![0x55, 0x66, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    pointer_loop.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    socket.send(&pointer_loop).await.unwrap();
    let len = tokio::time::timeout(CLIENT_TIMEOUT, socket.recv(&mut buf))
        .await
        .expect("no reply to the pointer loop")
        .unwrap();
    assert_eq!(&buf[..2], &[0x55, 0x66], "a response packet was answered");
    assert_eq!(
        Message::from_vec(&buf[..len])
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::FormErr
    );

    // Garbage over TCP: a frame of junk, then a length prefix promising more than is sent.
    {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&[0x00, 0x03, 1, 2, 3, 0xff, 0xff, 9])
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
    }

    assert_eq!(sorted_ips(&udp_a(addr, "api").await), vec![ip("10.20.0.2")]);
    let response = tcp_query(addr, "api", RecordType::A).await.unwrap();
    assert_eq!(sorted_ips(&response), vec![ip("10.20.0.2")]);
}

#[tokio::test]
async fn one_failing_address_does_not_stop_the_others_and_is_retried() {
    // 192.0.2.1 (TEST-NET-1) is not on any interface here, so binding it fails.
    let unbindable = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 0);
    let good = any_port("127.0.0.6");
    let mut failing = view("n", good, &[("api", &["10.21.0.2"])]);
    failing.listen.push(unbindable);
    let config = DnsConfig {
        views: vec![failing],
        upstreams: vec![],
    };
    let server = DnsServer::new();
    let errors = server.apply(&config).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, unbindable);
    let message = errors[0].1.to_string();
    assert!(message.contains("UDP 192.0.2.1"), "{message}");
    assert_eq!(server.local_addr(unbindable), None);
    let addr = bound(&server, good);
    assert_eq!(sorted_ips(&udp_a(addr, "api").await), vec![ip("10.21.0.2")]);
    // Level-triggered: the failing address is tried again on every apply.
    assert_eq!(server.apply(&config).await.len(), 1);
    assert_eq!(bound(&server, good), addr);
}

#[tokio::test]
async fn metrics_count_queries_forwards_and_failures_per_view() {
    let listen = any_port("127.0.0.1");
    let server = serve(&DnsConfig {
        views: vec![view("metered", listen, &[("api", &["10.22.0.2"])])],
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    })
    .await;
    let mut registry = prometheus_client::registry::Registry::default();
    server.register_metrics(&mut registry);
    let addr = bound(&server, listen);
    udp_a(addr, "api").await;
    let failed = udp_a(addr, "elsewhere.example").await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("flotilla_dns_queries_total{view=\"metered\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("flotilla_dns_forwarded_total{view=\"metered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("flotilla_dns_failures_total{view=\"metered\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_on_several_networks_also_sees_its_other_networks_names() {
    let (_upstream, upstream_addr) = fake_upstream(&[("db", &["192.0.2.99"])]).await;
    let listen = any_port("127.0.0.4");
    // Queries to 127.0.0.4 come from 127.0.0.1 (the kernel's source for loopback).
    let with_client = |client: &str| {
        let mut v = view("edge", listen, &[("web", &["10.15.0.2"])]);
        v.clients.insert(
            ip(client),
            [
                ("db".to_string(), vec![ip("10.16.0.2")]),
                ("web".to_string(), vec![ip("10.16.0.9")]),
            ]
            .into(),
        );
        DnsConfig {
            views: vec![v],
            upstreams: vec![upstream_addr],
        }
    };
    let server = serve(&with_client("127.0.0.1")).await;
    let addr = bound(&server, listen);
    assert_eq!(sorted_ips(&udp_a(addr, "db").await), vec![ip("10.16.0.2")]);
    // The view's own name wins over the client's extra one.
    assert_eq!(sorted_ips(&udp_a(addr, "web").await), vec![ip("10.15.0.2")]);
    // Another client does not see the extra names: db goes upstream.
    assert!(server.apply(&with_client("127.0.0.9")).await.is_empty());
    assert_eq!(sorted_ips(&udp_a(addr, "db").await), vec![ip("192.0.2.99")]);
}
