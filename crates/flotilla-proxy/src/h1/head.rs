//! Request and response heads for the HTTP/1.1 fast path: parsed with
//! httparse (the parser inside hyper), judged (can the fast path forward
//! this message, how is its body framed) and written out again for the
//! other side without the connection-specific headers (RFC 9110 §7.6.1).
//! Pure functions over byte slices, so every rule is unit-tested here.

/// Heads bigger than this are not the fast path's business: a request goes
/// to hyper (which answers 431 past its own limit), a response fails.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Header lines the fast path parses at most; more goes to hyper.
const MAX_HEADERS: usize = 64;

/// Request bodies the fast path buffers (to replay them on another
/// endpoint) at most; a bigger or chunked body goes to hyper.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Headers that describe one hop and are never forwarded (besides those
/// `Connection` names). `Transfer-Encoding` is not among them here: the
/// fast path relays a chunked response body as it came, framing included.
fn is_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// The outcome of parsing what a client sent so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<T> {
    /// The head is not complete yet.
    Partial,
    Done(T),
    /// Something the fast path leaves to hyper: HTTP/1.0, `Upgrade`,
    /// `Expect`, a chunked or large body, absolute-form targets, a
    /// malformed head (hyper answers it with the right 4xx).
    HandOver,
}

/// A request the fast path forwards. Its head, rebuilt for the endpoint,
/// is in the `out` buffer given to `parse_request`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// Bytes of the head in the client's buffer; the body follows.
    pub len: usize,
    pub body_len: usize,
    /// The client asked to close the connection after this response.
    pub close: bool,
    pub is_head: bool,
    /// May be sent twice (RFC 9110 §9.2.2).
    pub idempotent: bool,
}

/// Parses a request head at the start of `buf`, and writes the head to
/// forward into `out` (cleared first).
pub(crate) fn parse_request(buf: &[u8], out: &mut Vec<u8>) -> Parsed<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::HandOver,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::HandOver;
    };
    if !path.starts_with('/') {
        return Parsed::HandOver;
    }
    let mut body_len = None;
    let (mut close, mut host, mut hop) = (false, false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_length(h.value) else {
                return Parsed::HandOver;
            };
            if body_len.is_some_and(|b| b != n) || n > MAX_BODY as u64 {
                return Parsed::HandOver;
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("host") {
            if host {
                return Parsed::HandOver;
            }
            host = true;
        } else if ["transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return Parsed::HandOver;
        } else if name.eq_ignore_ascii_case("connection") {
            hop = true;
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    // Names more headers to drop, or asks for an upgrade.
                    return Parsed::HandOver;
                }
            }
        } else if is_hop(name) {
            hop = true;
        }
    }
    if !host {
        return Parsed::HandOver;
    }
    out.clear();
    if hop {
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        write_headers(out, req.headers, |_| false);
        out.extend_from_slice(b"\r\n");
    } else {
        // The usual case: forwarded byte for byte.
        out.extend_from_slice(&buf[..len]);
    }
    Parsed::Done(RequestHead {
        len,
        body_len: body_len.unwrap_or(0) as usize,
        close,
        is_head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        ),
    })
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the endpoint closes the connection.
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The endpoint keeps the connection open after this response.
    pub keep_alive: bool,
    /// The client connection closes after this response (the client asked
    /// for it, or the body ends with the endpoint's close).
    pub close_client: bool,
}

/// A response the fast path cannot relay: the client gets a 502.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadResponse(pub String);

/// Parses a response head at the start of `buf` (None: incomplete), and
/// writes the head to relay into `out` (cleared first). `is_head` and
/// `close` come from the request.
pub(crate) fn parse_response(
    buf: &[u8],
    is_head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(BadResponse(format!("response head over {MAX_HEAD} bytes")))
        }
        Err(e) => return Err(BadResponse(format!("malformed response head: {e}"))),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse("malformed response head".into()));
    };
    if status == 101 {
        // Never asked for: requests with Upgrade go to hyper.
        return Err(BadResponse("unexpected 101 Switching Protocols".into()));
    }
    let mut keep_alive = version == 1;
    let (mut length, mut chunked, mut te) = (None, false, false);
    let mut named: Vec<&[u8]> = Vec::new();
    let mut hop = version != 1;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)
                .filter(|n| length.is_none_or(|l| l == *n))
                .ok_or_else(|| BadResponse("invalid Content-Length in the response".into()))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            // Chunked is the final coding when it is the last one listed.
            chunked = tokens(h.value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            hop = true;
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    named.push(token);
                }
            }
        } else if is_hop(name) {
            hop = true;
        }
    }
    let framing = if is_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if te {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    let close_client = close || framing == Framing::UntilClose;
    // With Transfer-Encoding, a Content-Length is wrong (RFC 9112 §6.3).
    let drop_length = te && length.is_some();
    out.clear();
    if hop || close_client || drop_length {
        out.extend_from_slice(b"HTTP/1.1 ");
        // The status code and reason as the endpoint wrote them.
        let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(0);
        let line = buf[..line_end]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[..line_end]);
        out.extend_from_slice(line.get(9..).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
        write_headers(out, resp.headers, |name| {
            named
                .iter()
                .any(|n| name.as_bytes().eq_ignore_ascii_case(n))
                || (drop_length && name.eq_ignore_ascii_case("content-length"))
        });
        if close_client {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&buf[..len]);
    }
    Ok(Some(ResponseHead {
        len,
        status,
        framing,
        keep_alive,
        close_client,
    }))
}

/// Writes header lines, without hop headers and those `skip` names.
fn write_headers(out: &mut Vec<u8>, headers: &[httparse::Header<'_>], skip: impl Fn(&str) -> bool) {
    for h in headers {
        if is_hop(h.name) || skip(h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// A Content-Length value: digits only (RFC 9110 §8.6).
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || v.len() > 18 {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> (Parsed<RequestHead>, String) {
        let mut out = Vec::new();
        let p = parse_request(raw.as_bytes(), &mut out);
        (p, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_plain_request_is_forwarded_byte_for_byte() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        let (p, out) = req(raw);
        assert_eq!(
            p,
            Parsed::Done(RequestHead {
                len: raw.len(),
                body_len: 0,
                close: false,
                is_head: false,
                idempotent: true
            })
        );
        assert_eq!(out, raw);
    }

    #[test]
    fn hop_headers_are_dropped_and_close_is_remembered() {
        let raw = "POST /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\nKeep-Alive: 5\r\nTE: trailers\r\nContent-Length: 3\r\n\r\nabc";
        let (p, out) = req(raw);
        let Parsed::Done(h) = p else { panic!("{p:?}") };
        assert!(h.close && !h.idempotent && !h.is_head);
        assert_eq!(h.body_len, 3);
        assert_eq!(&raw[h.len..], "abc");
        assert_eq!(
            out,
            "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn unusual_requests_go_to_hyper() {
        for raw in [
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: x-private\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(req(raw).0, Parsed::HandOver, "{raw:?}");
        }
    }

    #[test]
    fn a_partial_head_waits_for_more_unless_too_big() {
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n").0, Parsed::Partial);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(req(&big).0, Parsed::HandOver);
    }

    fn resp(raw: &str, is_head: bool, close: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        let h = parse_response(raw.as_bytes(), is_head, close, &mut out)
            .unwrap()
            .unwrap();
        (h, String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let (h, out) = resp(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            false,
            false,
        );
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive && !h.close_client);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        let (h, _) = resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, false);
        assert_eq!(h.framing, Framing::Empty);
        for s in ["204 No Content", "304 Not Modified", "103 Early Hints"] {
            let (h, _) = resp(&format!("HTTP/1.1 {s}\r\n\r\n"), false, false);
            assert_eq!(h.framing, Framing::Empty, "{s}");
        }
        let (h, out) = resp(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            false,
            false,
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        );
        let (h, out) = resp("HTTP/1.1 200 OK\r\nServer: s\r\n\r\n", false, false);
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.keep_alive && h.close_client);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: s\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn connection_headers_decide_reuse_and_are_not_relayed() {
        let (h, out) = resp(
            "HTTP/1.1 200 OK\r\nConnection: close, x-a\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        );
        assert!(!h.keep_alive && !h.close_client);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let (h, out) = resp(
            "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
            true,
        );
        assert!(!h.keep_alive && h.close_client);
        assert_eq!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nconnection: close\r\n\r\n"
        );
        let (h, _) = resp(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        );
        assert!(h.keep_alive);
    }

    #[test]
    fn broken_responses_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                parse_response(raw.as_bytes(), false, false, &mut Vec::new()).is_err(),
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, false, &mut Vec::new()),
            Ok(None)
        );
    }
}
