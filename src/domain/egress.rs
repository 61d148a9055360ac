//! Where lethe may send what a tenant asked it to: platform callbacks and
//! OpenDSR status callbacks go to URLs that API callers supply, so they must
//! not reach lethe's own network (cloud metadata, loopback admin ports,
//! private services) unless the operator allows it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Is this an address on the public internet?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (18..20).contains(&b))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Does this URL name an inside address by itself: an IP literal that is not
/// public, or a name that only resolves locally? (Names that resolve to an
/// inside address are caught when the call is made.)
pub fn names_inside(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || [".localhost", ".local", ".internal", ".localdomain"]
                    .iter()
                    .any(|s| d.ends_with(s))
                || !d.contains('.')
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(u: &str) -> bool {
        names_inside(&url::Url::parse(u).unwrap())
    }

    #[test]
    fn inside_addresses_are_recognised() {
        for u in [
            "http://127.0.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://printer.local/",
            "http://intranet/",
            "http://2130706433/",
        ] {
            assert!(inside(u), "{u} is inside");
        }
        for u in [
            "https://hooks.example.com/lethe",
            "http://93.184.216.34/",
            "http://[2606:2800:220:1:248:1893:25c8:1946]/",
        ] {
            assert!(!inside(u), "{u} is public");
        }
    }
}
