//! Every rule of the stateless proxy core (RFC 3261 §16.3-16.7, §16.11, RFC 3581; groups and
//! health) through the public entry point, `Proxy::handle`. Everything `handle` writes is parsed
//! and validated with our own parser (`support::Harness`).

#[path = "proxy_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;

use sipd::proxy::{
    ContactTarget, DropReason, Group, GroupTarget, HealthConfig, HealthProber, NextHop,
    PrefixTable, ProxyConfig, RouteTarget, StaticLocation, Transport,
};
use support::sim::{Answer, Node, Uas};
use support::{Harness, Msg, Out, PROXY, Req, UAC, addr, atlanta_config, tag_of};

fn hop(a: &str) -> RouteTarget {
    RouteTarget::Hop(NextHop {
        addr: addr(a),
        transport: Transport::Udp,
    })
}

const BILOXI_PROXY: &str = "192.0.2.20:5060";

/// atlanta.com with a domain route to biloxi.com.
fn routed() -> Harness {
    Harness::new(ProxyConfig {
        domain_routes: HashMap::from([("biloxi.com".to_owned(), hop(BILOXI_PROXY))]),
        ..atlanta_config()
    })
}

fn invite() -> Req {
    Req::new("INVITE", "sip:bob@biloxi.com")
}

const SDP: &[u8] = b"v=0\r\no=alice 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0 1 3 99\r\na=rtpmap:0 PCMU/8000\r\n";

// ---------------------------------------------------------------------------------------------
// §16.3 request validation
// ---------------------------------------------------------------------------------------------

#[test]
fn a_valid_invite_is_forwarded_with_the_body_and_other_headers_untouched() {
    let mut h = routed();
    let req = invite()
        .set("Content-Type", "application/sdp")
        .add("X-Custom", "kept as is ; really")
        .body(SDP);
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr(BILOXI_PROXY));
    assert_eq!(out.first_line(), "INVITE sip:bob@biloxi.com SIP/2.0");
    assert_eq!(out.body(), SDP);
    assert_eq!(out.header("Content-Length"), Some(SDP.len().to_string()));
    assert_eq!(
        out.header("X-Custom").as_deref(),
        Some("kept as is ; really")
    );
    for name in ["To", "From", "Call-ID", "CSeq", "Contact", "Content-Type"] {
        assert_eq!(out.all(name), Msg::new(&req.bytes()).all(name), "{name}");
    }
}

#[test]
fn missing_required_headers_get_400() {
    for name in ["To", "From", "Call-ID", "CSeq"] {
        let mut h = routed();
        let (_, code, reply) = h.req(&invite().remove(name)).reply();
        assert_eq!(code, 400, "without {name}");
        assert!(reply.first_line().starts_with("SIP/2.0 400 "));
    }
}

#[test]
fn a_request_without_via_cannot_be_answered_and_is_dropped() {
    let mut h = routed();
    assert_eq!(h.req(&invite().remove("Via")).dropped(), DropReason::NoVia);
}

#[test]
fn repeated_single_value_headers_get_400() {
    for (name, value) in [
        ("From", "<sip:eve@atlanta.com>;tag=2"),
        ("To", "<sip:carol@biloxi.com>"),
        ("Call-ID", "other@x"),
        ("CSeq", "1 INVITE"),
        ("Max-Forwards", "10"),
    ] {
        let mut h = routed();
        assert_eq!(h.req(&invite().add(name, value)).code(), 400, "{name}");
    }
}

#[test]
fn syntax_errors_get_400() {
    let cases = [
        invite().set("CSeq", "314159 BYE"),
        invite().set("CSeq", "x INVITE"),
        invite().set("Max-Forwards", "seventy"),
        invite().set("From", "<sip:alice@atlanta.com;tag=1"),
        Req::new("INVITE", "sip:bob@biloxi.com?Subject=hi"),
    ];
    for req in cases {
        let mut h = routed();
        assert_eq!(h.req(&req).code(), 400, "{req:?}");
    }
    // A broken request line with a readable header block is still answered.
    let mut h = routed();
    let bytes = invite().bytes();
    let broken = [
        b"INVITE  sip:bob@biloxi.com SIP/2.0".as_slice(),
        &bytes[33..],
    ]
    .concat();
    assert_eq!(h.send(&broken).code(), 400);
}

#[test]
fn disagreeing_content_lengths_get_400_and_such_a_response_is_dropped() {
    // RFC 4475 mcl01: nobody knows where the body ends; forwarding it (maybe onto a stream)
    // would let the next hop frame it differently from us.
    let mut h = routed();
    let mut req = invite().add("Content-Length", "5").body(b"hello world!!");
    req.content_length = true;
    assert_eq!(h.req(&req).code(), 400);
    let mut resp = response(200, &[OURS, "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1"]);
    let at = resp.len() - 2;
    resp.splice(at..at, b"Content-Length: 4\r\n".iter().copied());
    assert_eq!(
        h.send_from(BILOXI_PROXY, &resp).dropped(),
        DropReason::ResponseMalformed
    );
}

#[test]
fn another_sip_version_gets_505() {
    let mut h = routed();
    let mut req = invite();
    req.version = "SIP/7.0".into();
    assert_eq!(h.req(&req).code(), 505);
}

#[test]
fn a_non_sip_request_uri_scheme_gets_416_and_tel_is_routed() {
    for uri in [
        "mailto:bob@biloxi.com",
        "http://biloxi.com/bob",
        "urn:service:sos",
    ] {
        let mut h = routed();
        assert_eq!(h.req(&Req::new("INVITE", uri)).code(), 416, "{uri}");
    }
    let mut numbers = PrefixTable::new();
    numbers.insert("+1", hop("192.0.2.50:5060")).unwrap();
    let mut h = Harness::new(ProxyConfig {
        number_routes: numbers,
        ..atlanta_config()
    });
    let (to, _) = h.req(&Req::new("INVITE", "tel:+1-201-555-0123")).forward();
    assert_eq!(to, addr("192.0.2.50:5060"));
}

#[test]
fn max_forwards_zero_gets_483_and_one_is_forwarded_as_zero() {
    let mut h = routed();
    assert_eq!(h.req(&invite().set("Max-Forwards", "0")).code(), 483);
    let (_, out) = h.req(&invite().set("Max-Forwards", "1")).forward();
    assert_eq!(out.max_forwards(), Some(0));
}

#[test]
fn an_options_for_the_proxy_itself_at_max_forwards_zero_is_answered_200() {
    for uri in ["sip:192.0.2.1", "sip:atlanta.com", "sip:192.0.2.1:5060"] {
        let mut h = routed();
        let req = Req::new("OPTIONS", uri).set("Max-Forwards", "0");
        let (_, code, reply) = h.req(&req).reply();
        assert_eq!(code, 200, "{uri}");
        assert!(reply.header("Allow").unwrap().contains("INVITE"));
    }
    // Addressed to a user (or another host), it is 483.
    let mut h = routed();
    let req = Req::new("OPTIONS", "sip:alice@atlanta.com").set("Max-Forwards", "0");
    assert_eq!(h.req(&req).code(), 483);
}

#[test]
fn proxy_require_with_unknown_tags_gets_420_listing_them_in_unsupported() {
    let mut h = routed();
    let req = invite().add("Proxy-Require", "foo, bar");
    let (_, code, reply) = h.req(&req).reply();
    assert_eq!(code, 420);
    assert_eq!(reply.header("Unsupported").as_deref(), Some("foo, bar"));
    // Require is for the UAS: a proxy ignores it.
    let req = invite().add("Require", "100rel");
    let (_, out) = h.req(&req).forward();
    assert_eq!(out.header("Require").as_deref(), Some("100rel"));
}

#[test]
fn proxy_require_is_ignored_in_cancel_and_ack() {
    // RFC 3261 §8.2.2.3: Require and Proxy-Require MUST be ignored in a CANCEL and in the ACK
    // of a non-2xx response (which a stateless proxy cannot tell from a 2xx ACK).
    for method in ["CANCEL", "ACK"] {
        let mut h = routed();
        let req = Req::new(method, "sip:bob@biloxi.com").add("Proxy-Require", "foo");
        let (to, out) = h.req(&req).forward();
        assert_eq!(to, addr(BILOXI_PROXY), "{method}");
        assert_eq!(out.method().as_deref(), Some(method));
    }
}

#[test]
fn a_request_that_comes_back_unchanged_is_a_loop_482_and_a_spiral_is_not() {
    // atlanta.com routes biloxi.com to itself (a misconfiguration): the request loops.
    let mut h = Harness::new(ProxyConfig {
        domain_routes: HashMap::from([("biloxi.com".to_owned(), hop(PROXY))]),
        ..atlanta_config()
    });
    let (to, once) = h.req(&invite()).forward();
    assert_eq!(to, addr(PROXY));
    let (_, code, reply) = h.send_from(PROXY, &once.bytes).reply();
    assert_eq!(code, 482);
    assert_eq!(reply.vias().len(), 2);
    // The same request with a new Request-URI is a spiral (e.g. after a retarget): forwarded.
    let spiral = String::from_utf8(once.bytes.clone()).unwrap().replacen(
        "sip:bob@biloxi.com",
        "sip:carol@biloxi.com",
        1,
    );
    h.send_from(PROXY, spiral.as_bytes()).forward();
    // Our Via as the only one (checked from the parsed top Via, without the search): a loop
    // too; the same Via with a new Request-URI is not.
    let original_via = format!("Via: {}\r\n", once.vias()[1]);
    let ours_only = String::from_utf8(once.bytes.clone())
        .unwrap()
        .replacen(&original_via, "", 1);
    assert_eq!(Msg::new(ours_only.as_bytes()).vias().len(), 1);
    assert_eq!(h.send_from(PROXY, ours_only.as_bytes()).code(), 482);
    let spiral = ours_only.replacen("sip:bob@biloxi.com", "sip:carol@biloxi.com", 1);
    h.send_from(PROXY, spiral.as_bytes()).forward();
}

#[test]
fn another_proxy_using_the_same_secret_is_not_a_loop() {
    // Two proxies with the default branch secret compute the same loop-invariant hash.
    let mut first = routed();
    first.local = addr("192.0.2.99:5060");
    let (_, out) = first.req(&invite()).forward();
    let mut second = routed();
    let (to, again) = second.send_from("192.0.2.99:5060", &out.bytes).forward();
    assert_eq!(to, addr(BILOXI_PROXY));
    assert_eq!(again.vias().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// §16.4 route information processing
// ---------------------------------------------------------------------------------------------

#[test]
fn our_top_route_is_removed_and_the_next_route_is_the_next_hop() {
    for ours in [
        "<sip:192.0.2.1;lr>",
        "<sip:192.0.2.1:5060;lr>",
        "<sip:atlanta.com;lr>",
        // Decided from the host text alone (a configured name), in any case, with userinfo,
        // our port and other parameters.
        "<sip:ATLANTA.com;lr>",
        "<sip:proxy@atlanta.com:5060;lr;transport=udp>",
        "sip:atlanta.com;lr",
    ] {
        let mut h = routed();
        let req = invite().set("Route", &format!("{ours}, <sip:192.0.2.30:5070;lr>"));
        let (to, out) = h.req(&req).forward();
        assert_eq!(to, addr("192.0.2.30:5070"), "{ours}");
        assert_eq!(out.list("Route"), vec!["<sip:192.0.2.30:5070;lr>"]);
        assert_eq!(
            out.request_uri(),
            "sip:bob@biloxi.com",
            "loose routing keeps it"
        );
    }
    // Our Route on a line of its own: the line goes.
    let mut h = routed();
    let req = invite()
        .add("Route", "<sip:192.0.2.1;lr>")
        .add("Route", "<sip:192.0.2.30;lr>");
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.30:5060"));
    assert_eq!(out.all("Route"), vec!["<sip:192.0.2.30;lr>"]);
    // Only our Route: then the Request-URI decides.
    let mut h = routed();
    let (to, out) = h
        .req(&invite().set("Route", "<sip:192.0.2.1;lr>"))
        .forward();
    assert_eq!(to, addr(BILOXI_PROXY));
    assert!(out.all("Route").is_empty());
}

#[test]
fn a_route_that_is_not_ours_is_the_next_hop_and_stays() {
    let mut h = routed();
    let req = invite().set("Route", "<sip:192.0.2.30;lr>");
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.30:5060"));
    assert_eq!(out.list("Route"), vec!["<sip:192.0.2.30;lr>"]);
    // A port other than ours is another element.
    let req = invite().set("Route", "<sip:192.0.2.1:5070;lr>");
    let (to, _) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.1:5070"));
}

#[test]
fn route_host_names_resolve_through_the_static_hosts_table_only() {
    let mut h = Harness::new(ProxyConfig {
        hosts: HashMap::from([("edge.biloxi.com".to_owned(), "192.0.2.31".parse().unwrap())]),
        ..atlanta_config()
    });
    let req = invite().set("Route", "<sip:Edge.Biloxi.com:5080;lr>");
    assert_eq!(h.req(&req).forward().0, addr("192.0.2.31:5080"));
    // No DNS on the fast path: an unknown name is not resolvable.
    let req = invite().set("Route", "<sip:nowhere.example;lr>");
    assert_eq!(h.req(&req).code(), 503);
}

#[test]
fn a_strict_routing_previous_hop_is_rewritten_per_16_4() {
    // The previous hop put our Record-Route URI into the Request-URI and the remote target last
    // in Route.
    let mut h = routed();
    let req = Req::new("BYE", "sip:192.0.2.1:5060;lr").set("Route", "<sip:bob@192.0.2.40:5062>");
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.40:5062"));
    assert_eq!(out.request_uri(), "sip:bob@192.0.2.40:5062");
    assert!(out.all("Route").is_empty());
}

#[test]
fn after_the_strict_routing_rewrite_the_remaining_route_is_the_next_hop() {
    // §16.4 "proceed as if it received this modified request": the Route left is still the next
    // hop (§16.6 step 7), not the new Request-URI.
    let mut h = routed();
    let req = Req::new("BYE", "sip:192.0.2.1:5060;lr")
        .set("Route", "<sip:192.0.2.30;lr>, <sip:bob@192.0.2.40:5062>");
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.30:5060"));
    assert_eq!(out.request_uri(), "sip:bob@192.0.2.40:5062");
    assert_eq!(out.list("Route"), vec!["<sip:192.0.2.30;lr>"]);
}

// ---------------------------------------------------------------------------------------------
// §16.5 target determination
// ---------------------------------------------------------------------------------------------

fn contact(uri: &str, a: &str) -> ContactTarget {
    ContactTarget {
        uri: Arc::from(uri.as_bytes()),
        addr: addr(a),
        transport: Transport::Udp,
        q: 1000,
    }
}

/// atlanta.com with users, numbers, domain routes and a default route.
fn full() -> Harness {
    let mut loc = StaticLocation::new();
    loc.insert(
        "alice",
        "atlanta.com",
        vec![contact("sip:alice@192.0.2.101:5062;ob", "192.0.2.101:5062")],
    );
    loc.insert("carol", "atlanta.com", vec![]);
    loc.insert(
        "+4930999",
        "atlanta.com",
        vec![contact("sip:pbx@192.0.2.102", "192.0.2.102:5060")],
    );
    let mut numbers = PrefixTable::new();
    numbers.insert("+49", hop("192.0.2.60:5060")).unwrap();
    numbers.insert("+4930", hop("192.0.2.61:5060")).unwrap();
    Harness::with_location(
        ProxyConfig {
            number_routes: numbers,
            domain_routes: HashMap::from([("biloxi.com".to_owned(), hop(BILOXI_PROXY))]),
            default_route: Some(hop("192.0.2.70:5060")),
            ..atlanta_config()
        },
        Arc::new(loc),
    )
}

#[test]
fn the_location_service_retargets_users_of_our_domains() {
    let mut h = full();
    let (to, out) = h
        .req(&Req::new("INVITE", "sip:alice@ATLANTA.com"))
        .forward();
    assert_eq!(to, addr("192.0.2.101:5062"));
    assert_eq!(out.request_uri(), "sip:alice@192.0.2.101:5062;ob");
}

#[test]
fn a_known_user_without_binding_gets_480_and_an_unknown_one_404() {
    let mut h = full();
    assert_eq!(
        h.req(&Req::new("INVITE", "sip:carol@atlanta.com")).code(),
        480
    );
    assert_eq!(
        h.req(&Req::new("INVITE", "sip:dave@atlanta.com")).code(),
        404
    );
}

#[test]
fn number_routes_match_the_longest_prefix_after_the_location_service() {
    let mut h = full();
    let cases = [
        ("sip:+493012345@atlanta.com;user=phone", "192.0.2.61:5060"),
        ("sip:+49891234@atlanta.com", "192.0.2.60:5060"),
        ("tel:+49-30-1234", "192.0.2.61:5060"),
        // A registered number is found by the location service first.
        ("sip:+4930999@atlanta.com", "192.0.2.102:5060"),
        // Number routing comes before domain routes.
        ("sip:+4930555@biloxi.com", "192.0.2.61:5060"),
    ];
    for (uri, want) in cases {
        let (to, out) = h.req(&Req::new("INVITE", uri)).forward();
        assert_eq!(to, addr(want), "{uri}");
        if !uri.contains("999") {
            assert_eq!(out.request_uri(), uri, "number routes keep the Request-URI");
        }
    }
    // A number of our domain that matches no prefix: 404.
    assert_eq!(
        h.req(&Req::new("INVITE", "sip:+331234@atlanta.com")).code(),
        404
    );
}

#[test]
fn domain_routes_then_the_default_route_for_other_domains() {
    let mut h = full();
    let (to, _) = h.req(&Req::new("INVITE", "sip:bob@BILOXI.COM")).forward();
    assert_eq!(to, addr(BILOXI_PROXY));
    let (to, _) = h.req(&Req::new("INVITE", "sip:bob@chicago.com")).forward();
    assert_eq!(to, addr("192.0.2.70:5060"));
}

#[test]
fn without_routes_a_foreign_name_is_404_and_an_ip_literal_is_the_target() {
    let mut h = Harness::new(atlanta_config());
    assert_eq!(
        h.req(&Req::new("INVITE", "sip:bob@chicago.com")).code(),
        404
    );
    // §16.5: a Request-URI outside our domains is the target itself (no DNS needed here).
    let (to, out) = h.req(&Req::new("BYE", "sip:bob@192.0.2.4:5062")).forward();
    assert_eq!(to, addr("192.0.2.4:5062"));
    assert_eq!(out.request_uri(), "sip:bob@192.0.2.4:5062");
}

// ---------------------------------------------------------------------------------------------
// §16.6 forwarding
// ---------------------------------------------------------------------------------------------

#[test]
fn max_forwards_is_decremented_or_inserted_as_70() {
    let mut h = routed();
    let (_, out) = h.req(&invite().set("Max-Forwards", "10")).forward();
    assert_eq!(out.max_forwards(), Some(9));
    let (_, out) = h.req(&invite().remove("Max-Forwards")).forward();
    assert_eq!(out.all("Max-Forwards"), vec!["70"]);
}

#[test]
fn our_via_goes_on_top_with_a_stateless_branch() {
    let mut h = routed();
    let (_, out) = h.req(&invite()).forward();
    let vias = out.vias();
    assert_eq!(vias.len(), 2);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsd"),
        "{}",
        vias[0]
    );
    assert_eq!(
        vias[1],
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds"
    );
}

#[test]
fn record_route_with_lr_is_added_on_top_only_when_configured() {
    let mut h = routed();
    let req = invite().add("Record-Route", "<sip:p9.example.com;lr>");
    let (_, out) = h.req(&req).forward();
    assert_eq!(out.list("Record-Route"), vec!["<sip:p9.example.com;lr>"]);
    let mut h = Harness::new(ProxyConfig {
        record_route: true,
        domain_routes: HashMap::from([("biloxi.com".to_owned(), hop(BILOXI_PROXY))]),
        ..atlanta_config()
    });
    let (_, out) = h.req(&req).forward();
    assert_eq!(
        out.list("Record-Route"),
        vec!["<sip:192.0.2.1:5060;lr>", "<sip:p9.example.com;lr>"]
    );
}

fn forwarded_branch(h: &mut Harness, req: &Req) -> String {
    h.req(req).forward().1.branch(0)
}

#[test]
fn branches_follow_16_11() {
    let mut h = routed();
    let inv = invite();
    let b = forwarded_branch(&mut h, &inv);
    // A retransmission.
    assert_eq!(forwarded_branch(&mut h, &inv), b);
    // Its CANCEL (same top Via, Request-URI, Call-ID, From tag, CSeq number).
    let cancel = Req::new("CANCEL", "sip:bob@biloxi.com");
    assert_eq!(forwarded_branch(&mut h, &cancel), b);
    // The ACK of a non-2xx final response (same branch as the INVITE, To tag added).
    let ack =
        Req::new("ACK", "sip:bob@biloxi.com").set("To", "Bob <sip:bob@biloxi.com>;tag=8321234356");
    assert_eq!(forwarded_branch(&mut h, &ack), b);
    // The 2xx ACK is a new transaction: new top branch from the UAC, contact as Request-URI.
    let ack2 = Req::new("ACK", "sip:bob@192.0.2.4")
        .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds9")
        .set("To", "Bob <sip:bob@biloxi.com>;tag=8321234356");
    assert_ne!(forwarded_branch(&mut h, &ack2), b);
    // Other requests get other branches.
    let others = [
        invite().set("CSeq", "314160 INVITE"),
        invite().set("Call-ID", "other@pc33"),
        invite().set("From", "Alice <sip:alice@atlanta.com>;tag=99"),
        invite().set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKother"),
        invite().set("Via", "SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK776asdhds"),
        Req::new("INVITE", "sip:carol@biloxi.com"),
    ];
    let mut seen = vec![b];
    for r in &others {
        let x = forwarded_branch(&mut h, r);
        assert!(!seen.contains(&x), "{r:?}");
        seen.push(x);
    }
}

#[test]
fn rfc2543_peers_without_the_magic_cookie_get_stable_distinct_branches() {
    let mut h = routed();
    let old = invite().set("Via", "SIP/2.0/UDP 192.0.2.10:5060");
    let b = forwarded_branch(&mut h, &old);
    assert!(b.starts_with("z9hG4bK"));
    assert_eq!(forwarded_branch(&mut h, &old), b);
    assert_ne!(
        forwarded_branch(&mut h, &old.clone().set("CSeq", "2 INVITE")),
        b
    );
}

#[test]
fn received_and_rport_are_set_on_the_previous_hops_via() {
    let mut h = routed();
    // rport requested: filled in, and received added even though the address matches.
    let req = invite().set("Via", "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1");
    let (_, out) = h.send_from("192.0.2.10:61000", &req.bytes()).forward();
    assert_eq!(out.via_param(1, "rport"), Some(Some("61000".into())));
    assert_eq!(
        out.via_param(1, "received"),
        Some(Some("192.0.2.10".into()))
    );
    // A host name in sent-by: received.
    let req = invite().set("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK2");
    let (_, out) = h.req(&req).forward();
    assert_eq!(
        out.via_param(1, "received"),
        Some(Some("192.0.2.10".into()))
    );
    assert_eq!(out.via_param(1, "rport"), None);
    // A different address: received.
    let req = invite().set("Via", "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK3");
    let (_, out) = h.req(&req).forward();
    assert_eq!(
        out.via_param(1, "received"),
        Some(Some("192.0.2.10".into()))
    );
    // The sent-by it came from: untouched.
    let (_, out) = h.req(&invite()).forward();
    assert_eq!(
        out.vias()[1],
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds"
    );
}

#[test]
fn ack_and_cancel_are_forwarded_statelessly() {
    let mut h = routed();
    let (to, out) = h.req(&Req::new("CANCEL", "sip:bob@biloxi.com")).forward();
    assert_eq!(
        (to, out.method().as_deref()),
        (addr(BILOXI_PROXY), Some("CANCEL"))
    );
    let (to, out) = h.req(&Req::new("ACK", "sip:bob@biloxi.com")).forward();
    assert_eq!(
        (to, out.method().as_deref()),
        (addr(BILOXI_PROXY), Some("ACK"))
    );
    // An ACK that cannot be routed is never answered (it acknowledges our own final response).
    assert_eq!(
        h.req(&Req::new("ACK", "sip:nobody@atlanta.com")).dropped(),
        DropReason::AckAbsorbed
    );
    assert_eq!(
        h.req(&Req::new("ACK", "sip:bob@biloxi.com").set("Max-Forwards", "0"))
            .dropped(),
        DropReason::AckAbsorbed
    );
}

#[test]
fn content_length_is_added_when_forwarding_onto_a_stream() {
    // §16.6 step 9: a UDP request may omit Content-Length; a TCP next hop cannot frame it then.
    let mut loc = StaticLocation::new();
    let mut tcp = contact(
        "sip:alice@192.0.2.101:5062;transport=tcp",
        "192.0.2.101:5062",
    );
    tcp.transport = Transport::Tcp;
    loc.insert("alice", "atlanta.com", vec![tcp]);
    let mut h = Harness::with_location(atlanta_config(), Arc::new(loc));
    let mut req = Req::new("MESSAGE", "sip:alice@atlanta.com").body(b"hello");
    req.content_length = false;
    let out = h.req(&req);
    let Out::Forward { transport, msg, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(transport, Transport::Tcp);
    assert_eq!(msg.all("Content-Length"), vec!["5"]);
    assert_eq!(msg.body(), b"hello");
    assert!(msg.vias()[0].starts_with("SIP/2.0/TCP "));
    // Over UDP nothing is added.
    let mut h = routed();
    let mut req = invite().body(b"hello");
    req.content_length = false;
    assert!(h.req(&req).forward().1.all("Content-Length").is_empty());
}

#[test]
fn extra_datagram_bytes_after_content_length_are_not_forwarded() {
    let mut h = routed();
    let mut bytes = invite().body(SDP).bytes();
    bytes.extend_from_slice(b"INVITE sip:evil@biloxi.com SIP/2.0\r\n\r\n");
    let (_, out) = h.send(&bytes).forward();
    assert_eq!(out.body(), SDP);
    assert!(out.bytes.ends_with(SDP));
}

// ---------------------------------------------------------------------------------------------
// §16.7 / §16.11 responses
// ---------------------------------------------------------------------------------------------

fn response(code: u16, vias: &[&str]) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} Whatever\r\n");
    for v in vias {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    s.push_str(
        "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    s.into_bytes()
}

const OURS: &str = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsd0123456789abcdef0123456789abcdef";

#[test]
fn a_response_is_sent_to_the_next_vias_received_and_rport_after_removing_ours() {
    let mut h = routed();
    let cases = [
        ("SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1", "192.0.2.10:5060"),
        (
            "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1",
            "192.0.2.10:5070",
        ),
        (
            "SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1;received=192.0.2.10",
            "192.0.2.10:5070",
        ),
        (
            "SIP/2.0/UDP 10.1.1.1:5070;rport=61000;branch=z9hG4bK1;received=192.0.2.10",
            "192.0.2.10:61000",
        ),
    ];
    for (next, want) in cases {
        let (to, out) = h
            .send_from(BILOXI_PROXY, &response(180, &[OURS, next]))
            .forward();
        assert_eq!(to, addr(want), "{next}");
        assert_eq!(out.vias(), vec![next.to_owned()]);
    }
    // Two values on one Via line.
    let line = format!("{OURS}, SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1");
    let (to, out) = h
        .send_from(BILOXI_PROXY, &response(200, &[&line]))
        .forward();
    assert_eq!(to, addr("192.0.2.10:5060"));
    assert_eq!(
        out.vias(),
        vec!["SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1".to_owned()]
    );
}

#[test]
fn responses_not_for_us_or_with_nowhere_to_go_are_dropped() {
    let mut h = routed();
    let next = "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1";
    let foreign = "SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bKsd0123";
    assert_eq!(
        h.send_from(BILOXI_PROXY, &response(200, &[foreign, next]))
            .dropped(),
        DropReason::ResponseNotOurs
    );
    // Our address but not our branch.
    let not_our_branch = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKxyz";
    assert_eq!(
        h.send_from(BILOXI_PROXY, &response(200, &[not_our_branch, next]))
            .dropped(),
        DropReason::ResponseNotOurs
    );
    assert_eq!(
        h.send_from(BILOXI_PROXY, &response(200, &[OURS])).dropped(),
        DropReason::ResponseNoNextHop
    );
    for bad in [
        "SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1",
        "SIP/2.0/UDP 224.0.1.75;branch=z9hG4bK1",
        "SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1;received=255.255.255.255",
        "SIP/2.0/UDP [ff02::1];branch=z9hG4bK1",
    ] {
        assert_eq!(
            h.send_from(BILOXI_PROXY, &response(200, &[OURS, bad]))
                .dropped(),
            DropReason::Broadcast,
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Responses the proxy generates
// ---------------------------------------------------------------------------------------------

/// §8.2.6.2: Via (all, top with received/rport), From, Call-ID, CSeq copied; To copied with a
/// tag added when it had none.
#[track_caller]
fn assert_copies(req: &Req, reply: &Msg) {
    let req = Msg::checked(&req.bytes(), false);
    for name in ["From", "Call-ID", "CSeq"] {
        assert_eq!(reply.all(name), req.all(name), "{name}");
    }
    assert_eq!(reply.vias().len(), req.vias().len());
    assert_eq!(reply.vias()[1..], req.vias()[1..]);
    assert!(reply.vias()[0].starts_with(&req.vias()[0]));
    let (rto, qto) = (reply.header("To").unwrap(), req.header("To").unwrap());
    match tag_of(&qto) {
        Some(_) => assert_eq!(rto, qto),
        None => {
            assert!(rto.starts_with(&qto));
            assert!(tag_of(&rto).is_some_and(|t| !t.is_empty()));
            assert_eq!(rto.matches("tag=").count(), 1);
        }
    }
    assert_eq!(reply.header("Content-Length").as_deref(), Some("0"));
}

#[test]
fn generated_responses_copy_the_dialog_headers_and_are_valid() {
    let two_vias = invite().push_front("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKtop");
    let mut cases: Vec<(Harness, Req, u16)> = vec![
        (routed(), invite().add("Max-Forwards", "9"), 400),
        (full(), Req::new("INVITE", "sip:dave@atlanta.com"), 404),
        (routed(), Req::new("INVITE", "mailto:bob@biloxi.com"), 416),
        (routed(), invite().add("Proxy-Require", "x"), 420),
        (full(), Req::new("INVITE", "sip:carol@atlanta.com"), 480),
        (routed(), invite().set("Max-Forwards", "0"), 483),
        (routed(), two_vias.clone().set("Max-Forwards", "0"), 483),
        (
            routed(),
            invite()
                .set("To", "<sip:bob@biloxi.com>;tag=existing")
                .set("Max-Forwards", "0"),
            483,
        ),
    ];
    let mut req505 = invite();
    req505.version = "SIP/3.0".into();
    cases.push((routed(), req505, 505));
    for (mut h, req, want) in cases {
        let (to, code, reply) = h.req(&req).reply();
        assert_eq!(code, want, "{req:?}");
        assert_eq!(to, addr(UAC));
        assert_copies(&req, &reply);
    }
    // 503 with Retry-After when the whole group is down.
    let mut h = group_harness(2);
    mark_all_down(&mut h);
    let req = Req::new("INVITE", "sip:+15551234@atlanta.com");
    let (_, code, reply) = h.req(&req).reply();
    assert_eq!(code, 503);
    assert_copies(&req, &reply);
    assert_eq!(reply.header("Retry-After").as_deref(), Some("30"));
}

#[test]
fn the_to_tag_of_a_generated_response_is_stable_for_retransmissions() {
    let mut h = routed();
    let req = invite().set("Max-Forwards", "0");
    let a = h.req(&req).reply().2.to_tag();
    let b = h.req(&req).reply().2.to_tag();
    assert_eq!(a, b);
    let c = h
        .req(&req.clone().set("Call-ID", "another@pc33"))
        .reply()
        .2
        .to_tag();
    assert_ne!(a, c);
}

#[test]
fn generated_responses_go_where_18_2_2_says() {
    let mut h = routed();
    let bad = |via: &str| invite().set("Via", via).set("Max-Forwards", "0").bytes();
    // No rport: the source address and the sent-by port.
    let (to, _, reply) = h
        .send_from(
            "192.0.2.10:61000",
            &bad("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1"),
        )
        .reply();
    assert_eq!(to, addr("192.0.2.10:5070"));
    assert!(
        !reply.vias()[0].contains("received="),
        "sent-by is the source address"
    );
    let (to, _, reply) = h
        .send_from(
            "192.0.2.10:61000",
            &bad("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1"),
        )
        .reply();
    assert_eq!(to, addr("192.0.2.10:5070"));
    assert!(reply.vias()[0].contains("received=192.0.2.10"));
    // rport: the source address and port.
    let (to, _, reply) = h
        .send_from(
            "192.0.2.10:61000",
            &bad("SIP/2.0/UDP 10.1.1.1:5070;rport;branch=z9hG4bK1"),
        )
        .reply();
    assert_eq!(to, addr("192.0.2.10:61000"));
    assert_eq!(reply.via_param(0, "rport"), Some(Some("61000".into())));
    // TCP: back on the connection.
    let out = h.send_full(
        addr("192.0.2.10:61000"),
        Transport::Tcp,
        &bad("SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK1"),
    );
    assert_eq!(out.reply().0, addr("192.0.2.10:61000"));
}

#[test]
fn no_reply_ever_goes_to_a_broadcast_or_multicast_source() {
    let mut h = routed();
    let req = invite()
        .set("Max-Forwards", "0")
        .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1");
    for src in ["255.255.255.255:5060", "224.0.0.1:5060", "0.0.0.0:5060"] {
        assert_eq!(
            h.send_from(src, &req.bytes()).dropped(),
            DropReason::Broadcast,
            "{src}"
        );
    }
}

#[test]
fn no_request_is_forwarded_to_a_broadcast_or_multicast_address() {
    let mut h = routed();
    for route in ["<sip:255.255.255.255;lr>", "<sip:224.0.1.75;lr>"] {
        let req = invite().set("Route", route);
        assert_eq!(h.req(&req).dropped(), DropReason::Broadcast, "{route}");
    }
    let req = Req::new("BYE", "sip:bob@255.255.255.255");
    assert_eq!(h.req(&req).dropped(), DropReason::Broadcast);
}

// ---------------------------------------------------------------------------------------------
// Groups and health
// ---------------------------------------------------------------------------------------------

fn group_harness(n: usize) -> Harness {
    let mut numbers = PrefixTable::new();
    numbers.insert("+1", RouteTarget::Group(0)).unwrap();
    let group = Group {
        name: "gw".into(),
        targets: (0..n)
            .map(|i| GroupTarget {
                addr: addr(&format!("192.0.2.{}:5060", 80 + i)),
                transport: Transport::Udp,
                weight: 1,
            })
            .collect(),
        health_base: 0,
    };
    Harness::new(ProxyConfig {
        number_routes: numbers,
        groups: vec![group],
        ..atlanta_config()
    })
}

/// Takes every target down through the public prober: one probe each, never answered.
fn mark_all_down(h: &mut Harness) {
    let targets: Vec<_> = h.proxy.config().groups[0]
        .targets
        .iter()
        .map(|t| (t.addr, t.transport))
        .collect();
    let cfg = HealthConfig {
        interval_ms: 1_000,
        down_after: 1,
        up_after: 1,
    };
    let mut prober = HealthProber::new(cfg, h.health.clone(), &targets, 0);
    let mut buf = [0u8; 1024];
    for now in (0..=3_000).step_by(500) {
        while prober.poll_transmit(now, h.local, &mut buf).is_some() {}
    }
    assert!((0..targets.len()).all(|i| !h.health.is_up(i)));
}

#[test]
fn a_group_sends_each_call_to_one_target_by_call_id() {
    let mut h = group_harness(3);
    let mut seen = std::collections::HashSet::new();
    for i in 0..60 {
        let call = format!("call-{i}@pc33");
        let inv = Req::new("INVITE", "sip:+15551234@atlanta.com").set("Call-ID", &call);
        let (to, _) = h.req(&inv).forward();
        seen.insert(to);
        // Retransmissions and later requests of the call (no Record-Route: same Request-URI).
        assert_eq!(h.req(&inv).forward().0, to);
        let bye = Req::new("BYE", "sip:+15551234@atlanta.com")
            .set("Call-ID", &call)
            .set("CSeq", "314160 BYE")
            .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbye");
        assert_eq!(h.req(&bye).forward().0, to);
    }
    assert_eq!(seen.len(), 3, "all targets used: {seen:?}");
}

#[test]
fn a_group_skips_targets_that_are_down_and_answers_503_when_all_are() {
    let mut h = group_harness(2);
    let health = h.health.clone();
    let targets = [
        (addr("192.0.2.80:5060"), Transport::Udp),
        (addr("192.0.2.81:5060"), Transport::Udp),
    ];
    let cfg = HealthConfig {
        interval_ms: 1_000,
        down_after: 2,
        up_after: 2,
    };
    let mut prober = HealthProber::new(cfg, health.clone(), &targets, 0);
    let mut buf = vec![0u8; 2048];
    // Probes go out; only the second target answers (through `handle`, like any response).
    let mut round = |h: &mut Harness, prober: &mut HealthProber, now: u64, second_answers: bool| {
        while let Some(t) = prober.poll_transmit(now, h.local, &mut buf) {
            let probe = Msg::new(&buf[..t.len]);
            assert_eq!(probe.method().as_deref(), Some("OPTIONS"));
            if second_answers && t.to == targets[1].0 {
                let mut uas = Uas::new(t.to, "gw", Answer::Never);
                let mut out = Vec::new();
                uas.receive(now, h.local, &probe.bytes, &mut out);
                let (dest, bytes) = out.pop().unwrap();
                assert_eq!(dest, h.local);
                h.now_ms = now;
                let r = h.send_full(t.to, Transport::Udp, &bytes);
                assert_eq!(r.dropped(), DropReason::HealthAnswer);
            }
        }
    };
    for now in (0..=2_500).step_by(500) {
        round(&mut h, &mut prober, now, true);
    }
    assert!(!health.is_up(0), "two missed probes: down");
    assert!(health.is_up(1));
    for i in 0..20 {
        let inv = Req::new("INVITE", "sip:+15551234@atlanta.com").set("Call-ID", &format!("c{i}"));
        assert_eq!(h.req(&inv).forward().0, targets[1].0);
    }
    // The second one stops answering too.
    for now in (3_000..=6_000).step_by(500) {
        round(&mut h, &mut prober, now, false);
    }
    assert!(!health.is_up(1));
    let inv = Req::new("INVITE", "sip:+15551234@atlanta.com");
    let (_, code, reply) = h.req(&inv).reply();
    assert_eq!(code, 503);
    assert!(reply.header("Retry-After").is_some());
    // The ACK for that 503 is absorbed, not answered.
    let ack = Req::new("ACK", "sip:+15551234@atlanta.com");
    assert_eq!(h.req(&ack).dropped(), DropReason::AckAbsorbed);
}

#[test]
fn keepalives_and_garbage_are_dropped_without_an_answer() {
    let mut h = routed();
    assert_eq!(h.send(b"\r\n\r\n").dropped(), DropReason::KeepAlive);
    assert_eq!(h.send(b"").dropped(), DropReason::KeepAlive);
    assert_eq!(h.send(b"\x00\x01garbage").dropped(), DropReason::Malformed);
    assert_eq!(
        h.send(b"SIP/2.0 200 OK\r\nbroken").dropped(),
        DropReason::Malformed
    );
}

#[test]
fn the_strict_routing_rewrite_never_puts_uri_headers_into_the_request_uri() {
    // §19.1.5: a Request-URI carries no headers; §12.2.1.1 strips what a Request-URI cannot
    // carry when a Route URI takes its place.
    let mut h = routed();
    let req = Req::new("BYE", "sip:192.0.2.1:5060;lr")
        .set("Route", "<sip:bob@192.0.2.40:5062;transport=udp?X-A=b>");
    let (to, out) = h.req(&req).forward();
    assert_eq!(to, addr("192.0.2.40:5062"));
    assert_eq!(out.request_uri(), "sip:bob@192.0.2.40:5062;transport=udp");
}
