package webhook

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddressNotAllowed is wrapped by errors from ValidateURL and from
// clients made by NewClient when the destination is loopback, private,
// link-local or otherwise not a public unicast address.
var ErrAddressNotAllowed = errors.New("address not allowed")

// refusedRange is a block of addresses no delivery may reach, with the
// word used in error messages.
type refusedRange struct {
	prefix netip.Prefix
	kind   string
}

// refusedRanges lists the special-purpose blocks of the IANA registries
// that are not globally reachable, plus multicast. IPv4-mapped IPv6
// addresses are unmapped before the lookup, and IPv6 forms that embed an
// IPv4 address are checked again on the embedded address (see embeddedV4).
var refusedRanges = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes broadcast

	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	// IPv4-compatible addresses: deprecated, and a way to spell IPv4
	// addresses some stacks still route.
	{netip.MustParsePrefix("::/96"), "reserved"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "private"}, // local-use NAT64
	{netip.MustParsePrefix("100::/64"), "reserved"},      // discard-only
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "private"}, // deprecated site-local
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// checkAddr returns nil when addr may be reached by a delivery, and an
// error wrapping ErrAddressNotAllowed that names the kind of range
// otherwise.
func checkAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrAddressNotAllowed)
	}
	addr = addr.WithZone("").Unmap()
	if kind := refusedKind(addr); kind != "" {
		return fmt.Errorf("%w: %s is %s", ErrAddressNotAllowed, addr, kind)
	}
	if v4, ok := embeddedV4(addr); ok {
		if kind := refusedKind(v4); kind != "" {
			return fmt.Errorf("%w: %s embeds %s, which is %s", ErrAddressNotAllowed, addr, v4, kind)
		}
	}
	return nil
}

// refusedKind returns the kind of the first refused range holding addr, or
// "" when there is none.
func refusedKind(addr netip.Addr) string {
	for _, r := range refusedRanges {
		if r.prefix.Contains(addr) {
			return r.kind
		}
	}
	return ""
}

// embeddedV4 returns the IPv4 address carried by a NAT64 (64:ff9b::/96) or
// 6to4 (2002::/16) address. Both are routed to public gateways that forward
// to the embedded address, so 64:ff9b::a00:1 would reach 10.0.0.1 on a
// network with a NAT64 gateway.
func embeddedV4(addr netip.Addr) (netip.Addr, bool) {
	b := addr.As16()
	switch {
	case !addr.Is6():
		return netip.Addr{}, false
	case nat64Prefix.Contains(addr):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(addr):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
