//! Pure record lookup: one view's name table and the answer to a parsed query.
//! No sockets here, so every rule is unit-tested without the network.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// TTL of every answer we give: 0 so that clients and caching stubs ask again
/// and see a changed replica set the moment the agent applies it.
pub const ANSWER_TTL: u32 = 0;

/// EDNS payload size we advertise; 1232 is the DNS flag day 2020 value that
/// avoids IP fragmentation on any sane path.
pub const EDNS_PAYLOAD: u16 = 1232;

/// One view's records, keyed by the normalised name (see [`normalize_name`]).
#[derive(Debug, Default)]
pub struct RecordTable {
    names: HashMap<String, Vec<IpAddr>>,
    /// Rotates the answer order so naive clients that take the first address spread load.
    rotation: AtomicUsize,
}

impl RecordTable {
    /// Builds the table from the agent's records; keys are normalised so "API." and "api" match.
    /// Duplicate keys after normalisation have their addresses merged (deduplicated, order kept).
    pub fn new(records: &BTreeMap<String, Vec<IpAddr>>) -> RecordTable {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, addrs) in records {
            let entry = names.entry(normalize_name(name)).or_default();
            for addr in addrs {
                if !entry.contains(addr) {
                    entry.push(*addr);
                }
            }
        }
        RecordTable {
            names,
            rotation: AtomicUsize::new(0),
        }
    }

    /// Addresses of `name` of the family asked for by `qtype`, rotated; `None` when the name is
    /// not ours (then the query goes upstream). A known name with no address of that family
    /// (including a service with no healthy replica) gives `Some(empty)`: NOERROR/NODATA.
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Option<Vec<IpAddr>> {
        let addrs = self.names.get(name)?;
        let mut matching: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|addr| match qtype {
                RecordType::A => addr.is_ipv4(),
                RecordType::AAAA => addr.is_ipv6(),
                RecordType::ANY => true,
                _ => false,
            })
            .collect();
        if matching.len() > 1 {
            let turn = self.rotation.fetch_add(1, Ordering::Relaxed) % matching.len();
            matching.rotate_left(turn);
        }
        Some(matching)
    }
}

/// Lower-case, without trailing dot: the key form of the agent's records.
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The key form of a name from the wire. Labels are joined byte-wise (not via
/// `to_ascii`, which escapes characters such as `_` differently than the agent writes them).
pub fn wire_name_key(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

/// What to do with a query that parsed.
#[derive(Debug)]
pub enum Decision {
    /// We answer it ourselves with this message.
    Answer(Message),
    /// Not our name: relay the raw query to the upstreams.
    Forward,
}

/// Decides the answer to `request` from `table`. Never panics on odd input: anything we do not
/// understand gets FORMERR/NOTIMP rather than being forwarded blindly.
pub fn decide(table: &RecordTable, request: &Message) -> Decision {
    if request.metadata.op_code != OpCode::Query {
        return Decision::Answer(error_response(request, ResponseCode::NotImp));
    }
    let [query] = request.queries.as_slice() else {
        // RFC 9619: QDCOUNT must be 1 for an OPCODE=QUERY.
        return Decision::Answer(error_response(request, ResponseCode::FormErr));
    };
    let key = wire_name_key(query.name());
    let Some(addrs) = table.lookup(&key, query.query_type()) else {
        return Decision::Forward;
    };
    let mut response = base_response(request);
    response.metadata.authoritative = true;
    if query.query_class() == DNSClass::IN {
        let owner = query.name().clone();
        for addr in addrs {
            let rdata = match addr {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            response.add_answer(Record::from_rdata(owner.clone(), ANSWER_TTL, rdata));
        }
    }
    Decision::Answer(response)
}

/// A response with an error code, echoing the question.
pub fn error_response(request: &Message, code: ResponseCode) -> Message {
    let mut response = base_response(request);
    response.metadata.response_code = code;
    response
}

/// Response skeleton: request id, flags, question, and an OPT record when the client sent one
/// (RFC 6891 requires it in the reply).
fn base_response(request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// Largest UDP response the client accepts: 512 without EDNS (RFC 1035), its advertised
/// payload size with EDNS, never below 512. Used as-is for relayed upstream answers (the
/// upstream already chose their size).
pub fn udp_limit(request: &Message) -> usize {
    match &request.edns {
        Some(edns) => usize::from(edns.max_payload().max(512)),
        None => 512,
    }
}

/// Largest UDP response we build ourselves: the client's limit, but no more than the
/// [`EDNS_PAYLOAD`] we advertise (RFC 6891 6.2.5: the smaller of the two), so big replica
/// sets go over TCP instead of as fragmented datagrams.
pub fn local_udp_limit(request: &Message) -> usize {
    udp_limit(request).min(usize::from(EDNS_PAYLOAD).max(512))
}

/// The same response cut to its header and question with TC set, telling the client to retry
/// over TCP (RFC 1035 4.2.1).
pub fn truncated(response: &Message) -> Message {
    let mut cut = Message::response(response.metadata.id, response.metadata.op_code);
    cut.metadata = response.metadata;
    cut.metadata.truncation = true;
    cut.add_queries(response.queries.iter().cloned());
    cut.edns = response.edns.clone();
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn table(entries: &[(&str, &[IpAddr])]) -> RecordTable {
        let records = entries
            .iter()
            .map(|(name, addrs)| (name.to_string(), addrs.to_vec()))
            .collect();
        RecordTable::new(&records)
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        msg
    }

    fn answer_ips(decision: Decision) -> (ResponseCode, Vec<IpAddr>) {
        let Decision::Answer(msg) = decision else {
            panic!("expected a local answer, got Forward");
        };
        let ips = msg
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                other => panic!("unexpected rdata {other:?}"),
            })
            .collect();
        (msg.metadata.response_code, ips)
    }

    #[test]
    fn names_match_case_insensitively_with_or_without_trailing_dot() {
        let t = table(&[("API.", &[v4(1)]), ("tasks.api", &[v4(2)])]);
        for name in ["api", "API", "api.", "Api."] {
            let (code, ips) = answer_ips(decide(&t, &query(name, RecordType::A)));
            assert_eq!(code, ResponseCode::NoError);
            assert_eq!(ips, vec![v4(1)], "name {name}");
        }
        let (_, ips) = answer_ips(decide(&t, &query("TASKS.Api", RecordType::A)));
        assert_eq!(ips, vec![v4(2)]);
    }

    #[test]
    fn underscore_names_are_found() {
        let t = table(&[("shop_api", &[v4(3)])]);
        let (_, ips) = answer_ips(decide(&t, &query("shop_api", RecordType::A)));
        assert_eq!(ips, vec![v4(3)]);
    }

    #[test]
    fn unknown_names_are_forwarded() {
        let t = table(&[("api", &[v4(1)])]);
        assert!(matches!(
            decide(&t, &query("web", RecordType::A)),
            Decision::Forward
        ));
        assert!(matches!(
            decide(&t, &query("api.example.com", RecordType::A)),
            Decision::Forward
        ));
    }

    #[test]
    fn other_types_for_known_names_are_empty_noerror() {
        let t = table(&[("api", &[v4(1)])]);
        for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let (code, ips) = answer_ips(decide(&t, &query("api", qtype)));
            assert_eq!(code, ResponseCode::NoError);
            assert!(ips.is_empty(), "{qtype:?}");
        }
    }

    #[test]
    fn aaaa_returns_ipv6_records_and_a_only_ipv4() {
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let t = table(&[("api", &[v4(1), v6])]);
        assert_eq!(
            answer_ips(decide(&t, &query("api", RecordType::AAAA))).1,
            vec![v6]
        );
        assert_eq!(
            answer_ips(decide(&t, &query("api", RecordType::A))).1,
            vec![v4(1)]
        );
    }

    #[test]
    fn empty_service_is_noerror_without_answers() {
        let t = table(&[("tasks.api", &[])]);
        let (code, ips) = answer_ips(decide(&t, &query("tasks.api", RecordType::A)));
        assert_eq!(code, ResponseCode::NoError);
        assert!(ips.is_empty());
    }

    #[test]
    fn answers_rotate_and_keep_every_address() {
        let t = table(&[("tasks.api", &[v4(1), v4(2), v4(3)])]);
        let mut firsts = Vec::new();
        for _ in 0..3 {
            let (_, mut ips) = answer_ips(decide(&t, &query("tasks.api", RecordType::A)));
            firsts.push(ips[0]);
            ips.sort();
            assert_eq!(ips, vec![v4(1), v4(2), v4(3)]);
        }
        firsts.sort();
        assert_eq!(firsts, vec![v4(1), v4(2), v4(3)]);
    }

    #[test]
    fn answers_carry_ttl_zero_id_and_flags() {
        let t = table(&[("api", &[v4(1)])]);
        let request = query("api", RecordType::A);
        let Decision::Answer(msg) = decide(&t, &request) else {
            panic!("expected answer");
        };
        assert_eq!(msg.metadata.id, request.metadata.id);
        assert_eq!(msg.metadata.message_type, MessageType::Response);
        assert!(msg.metadata.recursion_desired);
        assert_eq!(msg.answers[0].ttl, ANSWER_TTL);
        assert_eq!(msg.queries, request.queries);
    }

    #[test]
    fn several_questions_are_formerr_and_other_opcodes_notimp() {
        let t = table(&[("api", &[v4(1)])]);
        let mut two = query("api", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("web").unwrap(),
            RecordType::A,
        ));
        assert_eq!(answer_ips(decide(&t, &two)).0, ResponseCode::FormErr);
        let mut none = query("api", RecordType::A);
        none.queries.clear();
        assert_eq!(answer_ips(decide(&t, &none)).0, ResponseCode::FormErr);
        let mut update = query("api", RecordType::A);
        update.metadata.op_code = OpCode::Update;
        assert_eq!(answer_ips(decide(&t, &update)).0, ResponseCode::NotImp);
    }

    #[test]
    fn duplicate_keys_after_normalisation_merge() {
        let t = table(&[("api", &[v4(1)]), ("API.", &[v4(1), v4(2)])]);
        let mut ips = t.lookup("api", RecordType::A).unwrap();
        ips.sort();
        assert_eq!(ips, vec![v4(1), v4(2)]);
    }

    #[test]
    fn udp_limit_follows_edns() {
        let mut request = query("api", RecordType::A);
        assert_eq!(udp_limit(&request), 512);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        request.set_edns(edns);
        assert_eq!(udp_limit(&request), 4096);
        assert_eq!(local_udp_limit(&request), usize::from(EDNS_PAYLOAD));
        let mut small = Edns::new();
        small.set_max_payload(100);
        request.set_edns(small);
        assert_eq!(udp_limit(&request), 512);
        assert_eq!(local_udp_limit(&request), 512);
    }
}
