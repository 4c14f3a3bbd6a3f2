"""The box's own Wi-Fi network for the tablet, as NetworkManager should hold it: the
checks on `[wifi]`, the passphrase, and the nmcli argv lists (pure functions; running
them is the application layer's job, through system_tool)."""

from __future__ import annotations

import ipaddress
import re
import secrets
import shlex
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.config_sections import WifiConfig
from appliance.errors import ConfigError

PROFILE = "vigbox-ap"   # the NetworkManager connection profile's name
# Above any client profile (those default to 0): wherever the box is, the tablet finds
# its network rather than the box wandering off to join another one.
AUTOCONNECT_PRIORITY = 100
# 32 symbols (5 bits each) without the look-alikes 0/o and 1/l: 16 of them are 80 bits,
# typed on a tablet as four groups of four.
PASSPHRASE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
PASSPHRASE_GROUPS = 4
PASSPHRASE_GROUP_LEN = 4
SSID_MAX_BYTES = 32
# Linux interface names: at most 15 bytes (IFNAMSIZ 16 with its NUL), no '/' or spaces.
INTERFACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# The UI's listening addresses a tablet on the box's network can reach besides its own.
ANY_HOST = ("0.0.0.0", "::", "")
CHANNELS = {"bg": range(1, 15),
            "a": (36, 40, 44, 48, 52, 56, 60, 64, 100, 104, 108, 112, 116, 120, 124, 128,
                  132, 136, 140, 144, 149, 153, 157, 161, 165)}


@dataclass(frozen=True)
class Network:
    """The access point to set up, checked: what NetworkManager and the tablet need."""

    profile: str
    interface: str
    ssid: str
    address: str   # the box's address with its prefix, e.g. 10.42.0.1/24
    band: str
    channel: int   # 0: NetworkManager chooses
    country: str   # "" = as the system has it
    web_port: int  # the tablet UI's port
    web_host: str = "0.0.0.0"   # where the UI listens ([web] host)

    @property
    def host(self) -> str:
        """The box's address on its network, without the prefix."""
        return self.address.split("/", 1)[0]

    @property
    def url(self) -> str:
        """Where the tablet finds the UI."""
        return ui_url(self.host, self.web_port)


def new_passphrase() -> str:
    """A fresh WPA2 passphrase from the system's CSPRNG, e.g. `k7dm-wq3e-9hxa-tnp4`."""
    return "-".join("".join(secrets.choice(PASSPHRASE_ALPHABET)
                            for _ in range(PASSPHRASE_GROUP_LEN))
                    for _ in range(PASSPHRASE_GROUPS))


def is_usable_passphrase(psk: str) -> bool:
    """WPA2-Personal takes 8 to 63 printable ASCII characters (64 would be a hex key)."""
    return 8 <= len(psk) <= 63 and all(" " <= c <= "~" for c in psk)


def ssid_for(box_name: str) -> str:
    """"vigbox-" and the box's name, made plain ASCII a tablet shows and a person types:
    accents dropped, anything else a hyphen, at most 32 bytes."""
    plain = unicodedata.normalize("NFKD", box_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9]+", "-", plain).strip("-")
    ssid = name if name.lower().startswith("vigbox") else f"vigbox-{name}".rstrip("-")
    return ssid[:SSID_MAX_BYTES].rstrip("-")


def check_ssid(ssid: str) -> str:
    """A configured network name: 1 to 32 bytes (UTF-8), no control characters."""
    size = len(ssid.encode("utf-8"))
    if not ssid.strip() or size > SSID_MAX_BYTES:
        raise ConfigError(f"wifi.ssid must be 1 to {SSID_MAX_BYTES} bytes (it is {size}); "
                          "leave it empty for vigbox- and the box's name")
    if any(unicodedata.category(c).startswith("C") for c in ssid):
        raise ConfigError("wifi.ssid holds a control character: use letters, digits and "
                          "hyphens")
    return ssid


def check_address(address: str) -> ipaddress.IPv4Interface:
    """wifi.address: the box's own IPv4 address with its prefix, in a private range, and
    neither the network's nor its broadcast address (ConfigError says which)."""
    hint = "; e.g. 10.42.0.1/24"
    if "/" not in address:
        raise ConfigError(f"wifi.address {address!r} needs its prefix length{hint}")
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        raise ConfigError(f"wifi.address {address!r} is not an IPv4 address with a "
                          f"prefix{hint}") from None
    if not isinstance(iface, ipaddress.IPv4Interface):
        raise ConfigError(f"wifi.address {address!r} must be IPv4 (tablets get their "
                          f"address from the box by DHCP){hint}")
    net = iface.network
    if net.prefixlen > 30:
        raise ConfigError(f"wifi.address {address!r}: a /{net.prefixlen} network leaves "
                          f"no address for the tablet{hint}")
    if iface.ip in (net.network_address, net.broadcast_address):
        which = "network" if iface.ip == net.network_address else "broadcast"
        raise ConfigError(f"wifi.address {address!r} is the {which} address of {net}, "
                          f"not one a box can have{hint}")
    bad = (iface.ip.is_loopback or iface.ip.is_link_local or iface.ip.is_multicast
           or iface.ip.is_unspecified or not iface.ip.is_private)
    if bad:
        raise ConfigError(f"wifi.address {address!r} is not in a private range (10.x, "
                          f"172.16-31.x, 192.168.x){hint}")
    return iface


def check_radio(band: str, channel: int) -> None:
    """The channel (0 = any) must be one of the band's."""
    if channel and channel not in CHANNELS[band]:
        what = "1 to 14" if band == "bg" else "36 to 165 (5 GHz channels)"
        raise ConfigError(f"wifi.channel {channel} is not a channel of band {band!r}: use "
                          f"{what}, or 0 to let NetworkManager choose")


def check_country(country: str) -> str:
    """A two-letter ISO 3166 country code, upper case ("" stays "")."""
    code = country.strip().upper()
    if code and not re.fullmatch(r"[A-Z]{2}", code):
        raise ConfigError(f"wifi.country {country!r} is not a two-letter country code "
                          "(e.g. GB, DE, NL)")
    return code


def ui_url(host: str, port: int) -> str:
    """The tablet UI's address on the box's network."""
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


def check_interface(interface: str) -> str:
    """A Linux network interface name, e.g. wlan0."""
    if not INTERFACE_RE.fullmatch(interface):
        raise ConfigError(f"wifi.interface {interface!r} is not an interface name: name "
                          "the Wi-Fi interface, e.g. wlan0 (`nmcli device` lists them)")
    return interface


def network_for(wifi: WifiConfig, box_name: str, web_port: int,
                web_host: str = "0.0.0.0") -> Network:
    """Check `[wifi]` and say what the access point will be (ConfigError on bad values)."""
    address = check_address(wifi.address)
    check_radio(wifi.band, wifi.channel)
    ssid = check_ssid(wifi.ssid) if wifi.ssid else ssid_for(box_name)
    return Network(profile=PROFILE, interface=check_interface(wifi.interface), ssid=ssid,
                   address=str(address), band=wifi.band, channel=wifi.channel,
                   country=check_country(wifi.country), web_port=web_port,
                   web_host=web_host)


def unreachable_ui(net: Network) -> str | None:
    """Why the tablet could not reach the UI at `net.url`, if `[web] host` says so."""
    if net.web_host in ANY_HOST or net.web_host == net.host:
        return None
    return (f"the UI listens on {net.web_host} only (web.host): the tablet cannot reach "
            f"it at {net.url}; set web.host to 0.0.0.0 or {net.host}")


# -- nmcli argv ---------------------------------------------------------------------------


def keyfile_name(net: Network, uuid: str) -> str:
    """The profile's file in NetworkManager's keyfile folder. The UUID keeps it apart
    from an older profile of the same name, which is removed only once this one is in."""
    return f"{net.profile}-{uuid}.nmconnection"


def keyfile_text(net: Network, psk: str, uuid: str) -> str:
    """The whole access point as a NetworkManager keyfile, the passphrase inside: the
    file (root, 0600) is how the passphrase reaches NetworkManager without ever being on
    a command line, where any local user could read it in /proc while nmcli runs.
    WPA2-AES only (RSN, CCMP both ways), the box's fixed address with NetworkManager's
    DHCP server for the tablet (shared), no IPv6, up by itself at boot."""
    wifi = {"mode": "ap", "band": net.band,
            **({"channel": str(net.channel)} if net.channel else {}),
            "ssid": _keyfile_ssid(net.ssid)}
    sections: dict[str, dict[str, str]] = {
        "connection": {"id": _keyfile_string(net.profile), "uuid": uuid, "type": "wifi",
                       "interface-name": net.interface, "autoconnect": "true",
                       "autoconnect-priority": str(AUTOCONNECT_PRIORITY)},
        "wifi": wifi,
        "wifi-security": {"key-mgmt": "wpa-psk", "proto": "rsn;", "pairwise": "ccmp;",
                          "group": "ccmp;",
                          # The Pi's Wi-Fi chip (brcmfmac) cannot do protected management
                          # frames as an access point: with PMF on, clients fail the
                          # handshake or the AP never starts (raspberrypi/linux#3619,
                          # #7247). 1 = disable.
                          "pmf": "1", "psk": _keyfile_string(psk)},
        "ipv4": {"method": "shared", "address1": net.address},
        "ipv6": {"method": "disabled"},
    }
    return "\n".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items())
                     for name, keys in sections.items())


def _keyfile_string(value: str) -> str:
    """A string as GLib's key files read it back exactly: a backslash doubled, every
    space as \\s (a leading or trailing one would otherwise be trimmed)."""
    return (value.replace("\\", "\\\\").replace(" ", "\\s").replace("\n", "\\n")
            .replace("\t", "\\t").replace("\r", "\\r"))


def _keyfile_ssid(ssid: str) -> str:
    """A network name as NetworkManager reads it: plain when it is printable ASCII that
    needs no escaping, else its bytes as a list (how NetworkManager itself writes such
    names, e.g. one with an umlaut)."""
    raw = ssid.encode("utf-8")
    if all(0x21 <= b <= 0x7E for b in raw) and not set(ssid) & set(";\\#"):
        return ssid
    return "".join(f"{b};" for b in raw)


def load_profile_argv(path: str) -> list[str]:
    """Have NetworkManager read a keyfile it does not know yet (or read it again)."""
    return ["nmcli", "connection", "load", path]


def list_profiles_argv() -> list[str]:
    """Every connection profile as `UUID:NAME` lines (terse: ':' in a name is `\\:`)."""
    return ["nmcli", "-t", "-f", "UUID,NAME", "connection", "show"]


def read_field_argv(uuid: str, field: str, *, secret: bool = False) -> list[str]:
    """One field of a profile, unescaped (`-s`: secrets too, which needs root)."""
    return ["nmcli", *(["-s"] if secret else []), "--escape", "no", "-g", field,
            "connection", "show", "uuid", uuid]


def delete_profile_argv(uuid: str) -> list[str]:
    """Remove one profile, named by its UUID (names need not be unique)."""
    return ["nmcli", "connection", "delete", "uuid", uuid]


def radio_on_argv() -> list[str]:
    """Wi-Fi may be switched off in NetworkManager (or blocked until a country is set)."""
    return ["nmcli", "radio", "wifi", "on"]


def up_argv(uuid: str) -> list[str]:
    """Start the access point now (nmcli waits until it is up or failed). By UUID: a
    profile of the same name left by someone else must not be the one started."""
    return ["nmcli", "connection", "up", "uuid", uuid]


def country_argv(country: str, *, raspi_config: bool) -> list[str]:
    """Set the Wi-Fi country: raspi-config on Raspberry Pi OS (it also keeps it across
    reboots and unblocks the radio), else the kernel's regulatory domain with iw."""
    if raspi_config:
        return ["raspi-config", "nonint", "do_wifi_country", country]
    return ["iw", "reg", "set", country]


def uuids_named(listing: str, name: str) -> list[str]:
    """The UUIDs of the profiles called `name` in `list_profiles_argv()`'s output."""
    found = []
    for line in listing.splitlines():
        uuid, sep, rest = line.partition(":")
        if sep and re.sub(r"\\(.)", r"\1", rest) == name:
            found.append(uuid)
    return found


def shown(argv: Sequence[str]) -> str:
    """An argv as one line for people (none holds the passphrase: it goes in a keyfile)."""
    return " ".join(shlex.quote(a) for a in argv)
