//! Client IP and scheme: forwarding headers believed only from `server.trusted_proxies`.

use std::net::{IpAddr, SocketAddr};

use flagon::client_ip::{IpRange, TrustedProxies};
use flagon::http::{HeaderMap, HeaderValue};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, ClientIp, ClientScheme, Route};
use rand::Rng;

fn trusted() -> TrustedProxies {
    TrustedProxies::parse(["10.0.0.0/8", "192.0.2.7", "fd00::/8", "::1"]).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn client(pairs: &[(&'static str, &str)], from: &str) -> Option<IpAddr> {
    trusted().client_ip(&headers(pairs), peer(from))
}

const PROXY: &str = "10.0.0.1:4000";

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_sends() {
    let h = [
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=198.51.100.2"),
    ];
    assert_eq!(client(&h, "203.0.113.9:5555"), Some(ip("203.0.113.9")));
}

#[test]
fn no_peer_is_no_client_address() {
    assert_eq!(
        trusted().client_ip(&headers(&[("x-forwarded-for", "198.51.100.1")]), None),
        None
    );
}

#[test]
fn the_rightmost_untrusted_hop_is_the_client() {
    let h = [("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.2.3.4")];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
    // Several header lines are one list, in order.
    let h = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "198.51.100.1, 10.2.3.4"),
    ];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
    let h = [
        ("x-forwarded-for", "6.6.6.6, 198.51.100.1"),
        ("x-forwarded-for", "10.2.3.4"),
    ];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
}

#[test]
fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
    let h = [("x-forwarded-for", "10.9.9.9, 192.0.2.7,10.2.3.4")];
    assert_eq!(client(&h, PROXY), Some(ip("10.9.9.9")));
}

#[test]
fn a_trusted_peer_without_forwarding_headers_is_the_client() {
    assert_eq!(client(&[], PROXY), Some(ip("10.0.0.1")));
    assert_eq!(
        client(&[("x-forwarded-for", " , ")], PROXY),
        Some(ip("10.0.0.1"))
    );
}

#[test]
fn malformed_hops_fall_back_to_the_peer() {
    for bad in [
        "198.51.100.1, not-an-ip",
        "198.51.100.1:port",
        "[::1",
        "1.2.3.4:99999999",
        "unknown",
    ] {
        let h = [("x-forwarded-for", bad)];
        assert_eq!(client(&h, PROXY), Some(ip("10.0.0.1")), "{bad}");
    }
    // Junk left of the client's hop was written by the client and is ignored.
    let h = [("x-forwarded-for", "junk, 198.51.100.1")];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
    // A header value that is not text.
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"198.51.100.1\xff").unwrap(),
    );
    assert_eq!(trusted().client_ip(&h, peer(PROXY)), Some(ip("10.0.0.1")));
}

#[test]
fn ports_brackets_and_mapped_addresses_are_normalised() {
    let h = [(
        "x-forwarded-for",
        "198.51.100.1:1234, [2001:db8::1]:443, [::ffff:10.1.1.1]",
    )];
    assert_eq!(client(&h, PROXY), Some(ip("2001:db8::1")));
    let h = [("x-forwarded-for", "::ffff:198.51.100.1")];
    assert_eq!(
        client(&h, PROXY),
        Some(ip("198.51.100.1")),
        "v4-mapped hops are v4"
    );
    // A v4-mapped peer matches a v4 range; v6 proxies work too.
    assert_eq!(
        client(
            &[("x-forwarded-for", "198.51.100.1")],
            "[::ffff:10.0.0.1]:80"
        ),
        Some(ip("198.51.100.1"))
    );
    assert_eq!(
        client(&[("x-forwarded-for", "198.51.100.1")], "[::1]:80"),
        Some(ip("198.51.100.1"))
    );
    assert_eq!(
        client(&[], "[::ffff:203.0.113.9]:80"),
        Some(ip("203.0.113.9"))
    );
}

#[test]
fn the_forwarded_header_is_read_when_x_forwarded_for_is_absent() {
    let h = [(
        "forwarded",
        "for=6.6.6.6, for=198.51.100.1;proto=https, for=10.2.3.4",
    )];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
    let h = [("forwarded", r#"for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#)];
    assert_eq!(client(&h, PROXY), Some(ip("2001:db8:cafe::17")));
    let h = [
        ("forwarded", r#"For="198.51.100.1:80""#),
        ("forwarded", "for=10.2.3.4"),
    ];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
    let h = [("forwarded", "for=10.9.9.9, for=10.2.3.4")];
    assert_eq!(
        client(&h, PROXY),
        Some(ip("10.9.9.9")),
        "all trusted: the leftmost"
    );
    // X-Forwarded-For wins when both are present.
    let h = [
        ("forwarded", "for=198.51.100.2"),
        ("x-forwarded-for", "198.51.100.1"),
    ];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
}

#[test]
fn unknown_obfuscated_or_broken_forwarded_hops_fall_back_to_the_peer() {
    for bad in [
        "for=unknown",
        "for=_hidden, for=10.2.3.4",
        "for=198.51.100.1, by=10.0.0.1",
        r#"for="198.51.100.1"#,
        "for=198.51.100.1;for=198.51.100.2",
        "for",
        "=198.51.100.1",
        r#"for="\1.2.3.4""#,
    ] {
        let h = [("forwarded", bad)];
        assert_eq!(client(&h, PROXY), Some(ip("10.0.0.1")), "{bad}");
    }
    // An unknown hop left of the client's is the client's own business.
    let h = [("forwarded", "for=unknown, for=198.51.100.1")];
    assert_eq!(client(&h, PROXY), Some(ip("198.51.100.1")));
}

fn scheme(pairs: &[(&'static str, &str)], from: &str) -> ClientScheme {
    trusted().client_scheme(&headers(pairs), peer(from))
}

#[test]
fn the_scheme_is_believed_only_from_trusted_proxies() {
    use ClientScheme::{Http, Https};
    assert_eq!(scheme(&[("x-forwarded-proto", "https")], PROXY), Https);
    assert_eq!(scheme(&[("x-forwarded-proto", "HTTPS")], PROXY), Https);
    assert_eq!(
        scheme(&[("x-forwarded-proto", "https")], "203.0.113.9:1"),
        Http
    );
    assert_eq!(
        trusted().client_scheme(&headers(&[("x-forwarded-proto", "https")]), None),
        Http
    );
    assert_eq!(scheme(&[], PROXY), Http);
    // The last entry is our proxy's...
    assert_eq!(scheme(&[("x-forwarded-proto", "https, http")], PROXY), Http);
    assert_eq!(
        scheme(
            &[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-proto", "https")
            ],
            PROXY
        ),
        Https
    );
    // ...unless the list lines up with X-Forwarded-For: then the client's hop's entry.
    let h = [
        ("x-forwarded-for", "198.51.100.1, 10.2.3.4"),
        ("x-forwarded-proto", "https, http"),
    ];
    assert_eq!(scheme(&h, PROXY), Https);
    let h = [
        ("x-forwarded-for", "198.51.100.1, 198.51.100.2"),
        ("x-forwarded-proto", "https, http"),
    ];
    assert_eq!(
        scheme(&h, PROXY),
        Http,
        "the untrusted hop's claim is not believed"
    );
    // Forwarded: the client's element's proto.
    assert_eq!(
        scheme(
            &[("forwarded", "for=198.51.100.1;proto=https;by=10.0.0.1")],
            PROXY
        ),
        Https
    );
    assert_eq!(
        scheme(
            &[("forwarded", "proto=https, for=198.51.100.1;proto=http")],
            PROXY
        ),
        Http
    );
    assert_eq!(
        scheme(
            &[(
                "forwarded",
                "for=198.51.100.1;proto=https, for=10.2.3.4;proto=http"
            )],
            PROXY
        ),
        Https
    );
}

#[test]
fn ranges_parse_strictly_and_match() {
    let r: IpRange = "10.0.0.0/8".parse().unwrap();
    assert!(r.contains(ip("10.255.0.1")));
    assert!(r.contains(ip("::ffff:10.1.2.3")));
    assert!(!r.contains(ip("11.0.0.1")));
    let mapped: IpRange = "::ffff:10.0.0.0/104".parse().unwrap();
    assert_eq!(mapped, r);
    assert_eq!(mapped.to_string(), "10.0.0.0/8");
    let all: IpRange = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::2")));
    let v6: IpRange = "fd00::/8".parse().unwrap();
    assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    assert_eq!("::1".parse::<IpRange>().unwrap().to_string(), "::1");
    for bad in [
        "10.0.0.0/33",
        "10.0.0.1/8",
        "10.0.0.0/+8",
        "10.0.0.0/",
        "proxy",
        "::/129",
        "",
    ] {
        assert!(bad.parse::<IpRange>().is_err(), "{bad}");
    }
}

#[test]
fn a_bad_trusted_proxy_is_a_build_error_naming_the_key() {
    let err = App::builder()
        .settings(testing_config_toml(
            "[server]\ntrusted_proxies = [\"10.0.0.1\", \"10.0.0.0/33\"]\n",
        ))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.trusted_proxies"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

fn app() -> App {
    App::builder()
        .settings(testing_config_toml(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        ))
        .route(
            Route::get(
                "/ip",
                |ClientIp(ip): ClientIp| async move { ip.to_string() },
            )
            .name("ip"),
        )
        .route(
            Route::get("/maybe", |ip: Option<ClientIp>| async move {
                ip.map_or("none".to_owned(), |ClientIp(ip)| ip.to_string())
            })
            .name("maybe"),
        )
        .route(
            Route::get("/scheme", |s: ClientScheme| async move { format!("{s:?}") }).name("scheme"),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_extractors_apply_the_apps_trusted_proxies() {
    let app = app();
    let c = TestClient::new(&app);
    let get = |path: &'static str, from: &'static str| {
        c.get(path)
            .peer(from.parse().unwrap())
            .header("x-forwarded-for", "198.51.100.1")
            .header("x-forwarded-proto", "https")
    };
    assert_eq!(get("/ip", PROXY).send().await.text(), "198.51.100.1");
    assert_eq!(
        get("/ip", "203.0.113.9:1").send().await.text(),
        "203.0.113.9"
    );
    assert_eq!(get("/scheme", PROXY).send().await.text(), "Https");
    assert_eq!(get("/scheme", "203.0.113.9:1").send().await.text(), "Http");
    // In-process requests without a peer have no client address.
    assert_eq!(c.get("/maybe").send().await.text(), "none");
    assert_eq!(
        c.get("/ip").send().await.status(),
        500,
        "no peer: a 500, not a panic"
    );
}

/// A random chain of hops and a peer, checked against a direct model of the rules, in both
/// header syntaxes and with random spellings (ports, brackets, mapped addresses, line splits).
#[test]
fn random_chains_agree_with_the_model() {
    let trusted = trusted();
    let mut rng = rand::rng();
    for _ in 0..5000 {
        let n = rng.random_range(0..6);
        let hops: Vec<IpAddr> = (0..n).map(|_| random_ip(&mut rng)).collect();
        let from = SocketAddr::new(random_ip(&mut rng), 4000);
        let expected = if !trusted.contains(from.ip()) || hops.is_empty() {
            from.ip().to_canonical()
        } else {
            hops.iter()
                .rev()
                .find(|h| !trusted.contains(**h))
                .or(hops.first())
                .unwrap()
                .to_canonical()
        };

        let mut xff = HeaderMap::new();
        let mut fwd = HeaderMap::new();
        let mut xff_line = Vec::new();
        let mut fwd_line = Vec::new();
        for h in &hops {
            xff_line.push(spell(&mut rng, *h, false));
            fwd_line.push(format!("for={}", spell(&mut rng, *h, true)));
            if rng.random_bool(0.3) {
                xff.append("x-forwarded-for", xff_line.join(", ").parse().unwrap());
                fwd.append("forwarded", fwd_line.join(", ").parse().unwrap());
                xff_line.clear();
                fwd_line.clear();
            }
        }
        if !xff_line.is_empty() {
            xff.append("x-forwarded-for", xff_line.join(",").parse().unwrap());
            fwd.append("forwarded", fwd_line.join(",").parse().unwrap());
        }
        assert_eq!(
            trusted.client_ip(&xff, Some(from)),
            Some(expected),
            "{hops:?} via {from}: {xff:?}"
        );
        assert_eq!(
            trusted.client_ip(&fwd, Some(from)),
            Some(expected),
            "{hops:?} via {from}: {fwd:?}"
        );
    }
}

/// Random header text never panics, and the answer is the peer or an address written in the
/// header (never one made up from fragments).
#[test]
fn random_header_text_never_panics_nor_invents_addresses() {
    let trusted = trusted();
    let mut rng = rand::rng();
    let tokens = [
        "198.51.100.1",
        "10.0.0.3",
        "2001:db8::1",
        "::ffff:",
        "[",
        "]",
        ":80",
        ",",
        ";",
        "=",
        "for=",
        "for",
        "\"",
        " ",
        "unknown",
        "_x",
        "proto=https",
        "1",
        ".",
        "\\",
    ];
    for _ in 0..20000 {
        let n = rng.random_range(0..10);
        let text: String = (0..n)
            .map(|_| tokens[rng.random_range(0..tokens.len())])
            .collect();
        let Ok(value) = HeaderValue::from_str(&text) else {
            continue;
        };
        let written: Vec<IpAddr> = text
            .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
            .flat_map(|run| [run, run.rsplit_once(':').map_or(run, |(a, _)| a)])
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(|a| a.to_canonical())
            .collect();
        for name in ["x-forwarded-for", "forwarded", "x-forwarded-proto"] {
            let mut h = HeaderMap::new();
            h.insert(name, value.clone());
            let got = trusted.client_ip(&h, peer(PROXY)).unwrap();
            let _ = trusted.client_scheme(&h, peer(PROXY));
            assert!(
                got == ip("10.0.0.1") || written.contains(&got),
                "{name}: {text} -> {got}"
            );
        }
    }
}

fn random_ip(rng: &mut impl Rng) -> IpAddr {
    match rng.random_range(0..6) {
        0 => IpAddr::from([10, rng.random(), rng.random(), rng.random()]),
        1 => ip("192.0.2.7"),
        2 => IpAddr::from([198, 51, 100, rng.random()]),
        3 => IpAddr::from([
            0xfd00u16 | rng.random_range(0..256u16),
            0,
            0,
            0,
            0,
            0,
            0,
            rng.random(),
        ]),
        4 => IpAddr::from([0x2001u16, 0xdb8, 0, 0, 0, 0, 0, rng.random()]),
        _ => IpAddr::V6(std::net::Ipv4Addr::from([10, 0, 0, rng.random()]).to_ipv6_mapped()),
    }
}

/// One way of writing `ip` as a hop; `forwarded` quotes what RFC 7239 requires quoted.
fn spell(rng: &mut impl Rng, ip: IpAddr, forwarded: bool) -> String {
    let port = rng.random_bool(0.5);
    match ip {
        IpAddr::V4(v4) if port => {
            let s = format!("{v4}:{}", rng.random_range(1..65535));
            if forwarded { format!("\"{s}\"") } else { s }
        }
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = match (port, forwarded) {
                (true, _) => format!("[{v6}]:{}", rng.random_range(1..65535)),
                (false, true) => format!("[{v6}]"),
                (false, false) => v6.to_string(),
            };
            if forwarded { format!("\"{s}\"") } else { s }
        }
    }
}

/// A request-scoped value's init sees the client address through its head.
#[tokio::test]
async fn a_request_local_init_sees_the_client_ip() {
    use flagon::{RequestLocal, Route};
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        ))
        .configure(|s| {
            let ip: RequestLocal<String> = s.request_local(|head| {
                head.client_ip()
                    .map(|c| c.0.to_string())
                    .unwrap_or_else(|| "none".into())
            });
            s.route(
                Route::get(
                    "/ip",
                    move |parts: flagon::http::request::Parts| async move {
                        ip.get(&parts).map(|s| (*s).clone()).unwrap_or_default()
                    },
                )
                .name("ip"),
            );
            Ok(())
        })
        .build()
        .unwrap();
    let client = flagon::testing::TestClient::new(&app);
    let res = client
        .get("/ip")
        .peer("10.0.0.2:1000".parse().unwrap())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await;
    assert_eq!(res.text(), "203.0.113.9");
    let res = client
        .get("/ip")
        .peer("198.51.100.1:1000".parse().unwrap())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await;
    assert_eq!(
        res.text(),
        "198.51.100.1",
        "a spoofed header from an untrusted peer is ignored"
    );
    assert_eq!(client.get("/ip").send().await.text(), "none");
}
