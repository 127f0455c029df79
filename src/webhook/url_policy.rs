//! Which webhook URLs may be called (no server-side request forgery): `https` to a host whose
//! every address is public. Loopback (and plain `http` to it) only when the configuration says
//! the stack runs locally. Checked when the URL is registered and again before each send, on
//! the addresses the request then connects to (so a name re-pointed at 10.0.0.1 or
//! 169.254.169.254 after registration — DNS rebinding — is refused too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The longest URL accepted.
const MAX_LENGTH: usize = 2048;

/// What the deployment allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// `WEBHOOK_ALLOW_LOOPBACK=true`: set only by the local scripts and tests.
    pub allow_loopback: bool,
}

impl UrlPolicy {
    /// The policy `WEBHOOK_ALLOW_LOOPBACK` asks for (anything but `true` is the deployed policy).
    pub fn from_env() -> Self {
        Self {
            allow_loopback: std::env::var("WEBHOOK_ALLOW_LOOPBACK").is_ok_and(|v| v == "true"),
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || (self.allow_loopback && is_loopback(ip))
    }
}

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("the webhook URL is not a valid absolute URL")]
    Parse(#[source] url::ParseError),
    #[error("the webhook URL is longer than {MAX_LENGTH} characters")]
    TooLong,
    #[error("the webhook URL must use https (http only to loopback, when the stack runs locally)")]
    Scheme,
    #[error("the webhook URL must name a host and carry no user name or password")]
    Authority,
    #[error("the webhook URL's host resolves to {0}, which is not a public address")]
    Forbidden(IpAddr),
    #[error("the webhook URL's host could not be resolved")]
    Resolve(#[source] std::io::Error),
    #[error("the webhook URL's host resolves to no address")]
    NoAddress,
}

impl UrlError {
    /// Whether a later attempt may succeed (a name that does not resolve now may later).
    pub fn is_transient(&self) -> bool {
        matches!(self, UrlError::Resolve(_) | UrlError::NoAddress)
    }
}

/// A webhook URL that passed the syntactic checks of a policy; [`WebhookUrl::resolve`] checks
/// its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub fn parse(raw: &str, policy: UrlPolicy) -> Result<Self, UrlError> {
        if raw.len() > MAX_LENGTH {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(raw).map_err(UrlError::Parse)?;
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Authority);
        }
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_loopback && is_loopback_host(&url) => {}
            _ => return Err(UrlError::Scheme),
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !policy.allows(*ip)) {
            return Err(UrlError::Forbidden(ip));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host, for logs (never the path or query, which may carry a receiver's token).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// Resolves the host and checks every address: one forbidden address refuses the URL, so
    /// a name cannot mix a public and a private answer. The request must connect to exactly
    /// these addresses (see `delivery`), never resolve again.
    pub async fn resolve(&self, policy: UrlPolicy) -> Result<Vec<SocketAddr>, UrlError> {
        let port = self.0.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match self.0.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            _ => tokio::net::lookup_host((self.host(), port))
                .await
                .map_err(UrlError::Resolve)?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(UrlError::NoAddress);
        }
        let plain_http = self.0.scheme() == "http";
        for address in &addresses {
            let ip = address.ip();
            // Plain http never leaves the machine, even to a public address.
            if !policy.allows(ip) || (plain_http && !is_loopback(ip)) {
                return Err(UrlError::Forbidden(ip));
            }
        }
        Ok(addresses)
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => is_loopback(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, CGNAT,
/// multicast, unspecified, broadcast, reserved or documentation, in v4 or v6, with v4 addresses
/// embedded in v6 (mapped, NAT64, 6to4) judged as the v4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network", 0.0.0.0
        || a == 10                              // private
        || a == 127                             // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254)               // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 88 && c == 99)     // 6to4 relay anycast
        || (a == 192 && b == 168)               // private
        || (a == 198 && (b == 18 || b == 19))   // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        // v4-mapped ::ffff:a.b.c.d judged as a.b.c.d; v4-compatible ::a.b.c.d (and :: and ::1)
        // are deprecated or special: refused.
        return s[5] == 0xffff && is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 64:ff9b::/96 (and the local-use 64:ff9b:1::/48): the v4 address it reaches.
        return s[2..6] == [0, 0, 0, 0] && is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4: the v4 address it tunnels to.
        return is_public_v4(embedded(s[1], s[2]));
    }
    let global_unicast = s[0] & 0xe000 == 0x2000; // 2000::/3; excludes fc00::/7, fe80::/10, ff00::/8
    global_unicast
        && !(s[0] == 0x2001 && s[1] == 0x0db8)  // documentation
        && !(s[0] == 0x2001 && s[1] == 0)       // Teredo
        && !(s[0] == 0x2001 && s[1] < 0x0200)   // other IETF protocol assignments (ORCHID, benchmarking, ...)
        && !(s[0] == 0x3fff && s[1] < 0x1000) // documentation (2024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYED: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };
    const LOCAL: UrlPolicy = UrlPolicy {
        allow_loopback: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_in_v4_and_v6() {
        for address in [
            "0.0.0.0",
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
        ] {
            assert!(!is_public(ip(address)), "{address} passed as public");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(address)), "{address} refused");
        }
    }

    #[test]
    fn deployed_urls_must_be_https_to_a_named_or_public_host() {
        assert!(WebhookUrl::parse("https://hooks.example.com/erasure?k=1", DEPLOYED).is_ok());
        assert!(WebhookUrl::parse("https://8.8.8.8/h", DEPLOYED).is_ok());
        for (url, why) in [
            ("http://hooks.example.com/", "plain http"),
            ("http://127.0.0.1:8080/", "loopback"),
            ("https://127.0.0.1/", "loopback over https"),
            ("https://[::1]/", "v6 loopback"),
            ("https://[::ffff:169.254.169.254]/", "mapped link-local"),
            ("https://10.0.0.1/", "private"),
            ("https://0x7f000001/", "loopback in hex"),
            ("https://2130706433/", "loopback as a number"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("ftp://hooks.example.com/", "scheme"),
            ("file:///etc/passwd", "file"),
            ("not a url", "garbage"),
        ] {
            assert!(
                WebhookUrl::parse(url, DEPLOYED).is_err(),
                "{why}: {url} accepted"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_LENGTH));
        assert!(matches!(
            WebhookUrl::parse(&long, DEPLOYED),
            Err(UrlError::TooLong)
        ));
    }

    #[test]
    fn locally_http_to_loopback_is_allowed_and_nothing_private() {
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/hook", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://[::1]:8080/hook", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://hooks.example.com/", LOCAL).is_err());
        assert!(WebhookUrl::parse("http://10.0.0.1/", LOCAL).is_err());
        assert!(WebhookUrl::parse("https://192.168.0.1/", LOCAL).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_when_deployed() {
        let url = WebhookUrl::parse("https://localhost/hook", DEPLOYED).unwrap();
        assert!(matches!(
            url.resolve(DEPLOYED).await,
            Err(UrlError::Forbidden(ip)) if ip.is_loopback()
        ));
        let local = WebhookUrl::parse("http://localhost:9/hook", LOCAL).unwrap();
        let addresses = local.resolve(LOCAL).await.unwrap();
        assert!(addresses
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9));
    }
}
