"""Platform policy for what tenants point the agent at: outbound URLs and the numbers calls are sent to.

Set by the platform (operator settings / chart values `operator.tenantPolicy`), never by a StoreAgent; the
operator renders it into each agent's environment (`STOREAGENT_TENANT_POLICY`, JSON). Both sides use these
pure checks: the operator at reconcile (a violating spec gets no pods), the agent again where it acts:
before every connection, on the address it is about to connect to (DNS rebinding), and before a transfer.
Only the standard library and pydantic, so both images can import it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that only mean something inside the cluster or the host: refused unless allowlisted.
_INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal", ".localhost", ".localdomain")
_INTERNAL_NAMES = ("localhost", "kubernetes", "metadata", "metadata.google.internal")

# Prefixes (E.164 digits after "+") refused whatever the country list says: international premium rate
# (+979), shared cost (+808), Inmarsat (+870), UPT (+878), satellite and international networks (+881,
# +882, +883), +888; NANP premium 900/976 and the NANP area codes outside the US and Canada, which bill at
# international rates though they look domestic (+1 876 Jamaica, +1 809 Dominican Republic, ...: the classic
# toll-fraud targets); UK 09, 087 and 118; German 0900/0137; French 089; Australian 190.
# Platforms add theirs (`deniedPrefixes`).
DEFAULT_DENIED_PREFIXES = (
    "979", "808", "870", "878", "881", "882", "883", "888",
    "1900", "1976",
    "1242", "1246", "1264", "1268", "1284", "1345", "1441", "1473", "1649", "1658", "1664", "1721", "1758",
    "1767", "1784", "1809", "1829", "1849", "1868", "1869", "1876",
    "449", "4487", "44118",
    "49900", "49137",
    "3389",
    "61190",
)


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class UrlPolicy(_Model):
    """Where providers' `baseUrl` and the webhook may point."""

    allow_http: bool = Field(False, description="plain http (local test servers only; keys travel in clear)")
    allow_hosts: tuple[str, ...] = Field(
        (), description="host names exempt from the internal-name and private-address rules; '.example.com' "
        "matches every subdomain (an in-cluster model server, a local test server)")
    allow_cidrs: tuple[str, ...] = Field(
        (), description="networks exempt from the private-address rule (what allowHosts resolve to)")

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(c, strict=False) for c in self.allow_cidrs]


class NumberPolicy(_Model):
    """Which numbers a call may be forwarded or transferred to (toll fraud: premium and international)."""

    allowed_country_codes: tuple[str, ...] = Field(
        (), description="E.164 country codes (digits) a target may be in; empty: only the countries of the "
        "shop's own phoneNumbers (no international forwarding unless the platform allows it); ['*']: any")
    denied_prefixes: tuple[str, ...] = Field(
        DEFAULT_DENIED_PREFIXES, description="E.164 digit prefixes always refused (premium, satellite, ...)")


class TenantPolicy(_Model):
    urls: UrlPolicy = Field(default_factory=UrlPolicy)
    numbers: NumberPolicy = Field(default_factory=NumberPolicy)


class PolicyError(ValueError):
    """A tenant value the platform's policy refuses; the message never contains URL credentials."""


def redact_url(url: str) -> str:
    """scheme://host[:port] only: userinfo, path and query may hold a key or a receiver's token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    return f"{parts.scheme}://{host}{port}"


def _host_allowed(host: str, policy: UrlPolicy) -> bool:
    for entry in policy.allow_hosts:
        entry = entry.lower()
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def address_refused(ip: IP, policy: UrlPolicy) -> str | None:
    """Why this address may not be connected to, or None. Private, loopback, link-local (the cloud metadata
    service at 169.254.169.254), CGNAT, multicast, reserved and unspecified addresses are refused unless an
    allowCidrs network holds them; IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in policy.networks()):
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata)"
    if ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


def check_url(url: str, policy: UrlPolicy, field: str = "url") -> str:
    """Static check of a URL (no DNS): scheme, no userinfo, host not internal, literal IPs public.
    Returns the lower-cased host. Raises PolicyError."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        _ = parts.port  # raises on a bad port
    except ValueError as e:
        raise PolicyError(f"{field}: not a valid URL ({e})") from None
    where = redact_url(url)
    allowed_schemes = ("https", "wss", "http", "ws") if policy.allow_http else ("https", "wss")
    if parts.scheme not in allowed_schemes:
        raise PolicyError(f"{field}: {where} must use https (the platform allows {', '.join(allowed_schemes)})")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise PolicyError(f"{field}: {where} must not carry credentials (user:password@); use the Secret")
    if not host:
        raise PolicyError(f"{field}: {where} has no host")
    if _host_allowed(host, policy):
        return host
    try:
        literal: IP | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        why = address_refused(literal, policy)
        if why:
            raise PolicyError(f"{field}: {where} is {why}; the platform does not allow it")
        return host
    if re.fullmatch(r"[0-9.]+|0x[0-9a-f.x]+", host):  # 2130706433, 0x7f.1: numeric forms resolvers accept
        raise PolicyError(f"{field}: {where} is a numeric host in a non-standard form")
    if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES) or "." not in host:
        raise PolicyError(f"{field}: {where} is a cluster-internal or single-label name; the platform does not "
                          "allow it")
    return host


def check_resolved(host: str, addresses: list[IP], policy: UrlPolicy) -> list[IP]:
    """At connect time: every address the name resolved to must be allowed (an attacker's DNS may return a
    public and a private one); returns them, so the caller connects to exactly what was checked."""
    if not addresses:
        raise PolicyError(f"{host}: resolved to no address")
    if _host_allowed(host, policy):
        return addresses
    for ip in addresses:
        why = address_refused(ip, policy)
        if why:
            raise PolicyError(f"{host} resolved to {ip}, {why}; refusing to connect")
    return addresses


E164_DIGITS = re.compile(r"\+([1-9][0-9]{6,14})")
# ITU-T E.164 country codes are prefix-free: 1 and 7 are one digit, these two, every other three.
_CC1 = {"1", "7"}
_CC2 = {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
        "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
        "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}


def country_code(number: str) -> str | None:
    m = E164_DIGITS.fullmatch(number)
    if m is None:
        return None
    d = m.group(1)
    return d[:1] if d[:1] in _CC1 else d[:2] if d[:2] in _CC2 else d[:3]


def number_refused(number: str, policy: NumberPolicy, home: Iterable[str] = ()) -> str | None:
    """Why a call may not be sent to this number, or None. `home`: the shop's own numbers, whose countries
    are the allowed ones when the platform lists none."""
    m = E164_DIGITS.fullmatch(number)
    if m is None:
        return f"{number!r} is not an E.164 number"
    digits = m.group(1)
    for prefix in policy.denied_prefixes:
        if digits.startswith(prefix):
            return f"{number} is in a refused range (+{prefix}: premium rate or international network)"
    allowed = set(policy.allowed_country_codes) or {c for n in home if (c := country_code(n))}
    if "*" not in allowed and country_code(number) not in allowed:
        listed = ", ".join(f"+{c}" for c in sorted(allowed)) or "none"
        return f"{number} is outside the countries allowed for this shop ({listed})"
    return None

