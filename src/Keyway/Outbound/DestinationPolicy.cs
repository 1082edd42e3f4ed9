using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;

namespace Keyway.Outbound;

/// <summary>Where Keyway may connect, as CIDR ranges (<c>10.0.0.0/8</c>, <c>fd00::/8</c>) or single addresses.</summary>
/// <remarks>
/// <para><see cref="Deny"/> adds to <see cref="DestinationPolicy.DefaultDeny"/>, it does not
/// replace it, so adding a range can never re-open the cloud metadata addresses by accident.
/// <see cref="Allow"/> overrides the defaults (for example loopback in development, or a device on
/// a link-local address), and a <see cref="Deny"/> range wider than itself, never Keyway's own listeners.</para>
/// <para>Private ranges are allowed by default: internal tools call internal APIs. An operator
/// who wants Keyway to reach only the public internet adds <c>10.0.0.0/8</c>, <c>172.16.0.0/12</c>,
/// <c>192.168.0.0/16</c>, <c>100.64.0.0/10</c> and <c>fc00::/7</c> to <see cref="Deny"/>.</para>
/// </remarks>
internal sealed record DestinationPolicyOptions
{
    /// <summary>The setting <see cref="Deny"/> comes from; refusals name it.</summary>
    public const string DenySetting = "KEYWAY_OUTBOUND_DENY";

    /// <summary>The setting <see cref="Allow"/> comes from; refusals name it.</summary>
    public const string AllowSetting = "KEYWAY_OUTBOUND_ALLOW";

    /// <summary>Ranges denied on top of the defaults.</summary>
    public IReadOnlyList<string> Deny { get; init; } = [];

    /// <summary>Ranges allowed even when a deny range (default or configured) covers them.</summary>
    public IReadOnlyList<string> Allow { get; init; } = [];
}

/// <summary>Why a destination is refused.</summary>
internal enum DenialSource
{
    /// <summary>A range of <see cref="DestinationPolicy.DefaultDeny"/>.</summary>
    Default,

    /// <summary>A range of <see cref="DestinationPolicyOptions.Deny"/>.</summary>
    Setting,

    /// <summary>An address and port Keyway itself listens on.</summary>
    OwnListener,
}

/// <summary>A refused destination: the range that matched and where that range comes from.</summary>
internal readonly record struct DestinationDenial(IPNetwork Range, DenialSource Source)
{
    /// <summary>A sentence for the caller: the address, the range, the setting that denies it and the one that would allow it.</summary>
    public string Explain(IPAddress address, int port) => Source switch
    {
        DenialSource.OwnListener =>
            $"{Endpoint(address, port)} is one of Keyway's own listeners, which it never connects to, whatever {DestinationPolicyOptions.AllowSetting} says",
        DenialSource.Setting =>
            $"{address} is in {Range}, which {DestinationPolicyOptions.DenySetting} denies; " +
            $"an admin can open part of it with a narrower range in {DestinationPolicyOptions.AllowSetting}",
        _ =>
            $"{address} is in {Range}, which Keyway denies by default (loopback, link-local, metadata and other local addresses); " +
            $"an admin can allow it by adding the range to {DestinationPolicyOptions.AllowSetting}",
    };

    private static string Endpoint(IPAddress address, int port) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";
}

/// <summary>
/// Decides whether Keyway may connect to an address. Checked at connect time on the address
/// actually connected to (see <see cref="OutboundHandler"/>), so DNS rebinding cannot slip past it.
/// </summary>
internal sealed class DestinationPolicy
{
    /// <summary>
    /// Denied unless allowed explicitly: loopback, link-local (cloud metadata at 169.254.169.254
    /// among it), other metadata addresses, "this network", unspecified, multicast and broadcast.
    /// Private ranges are not here: internal tools call internal APIs.
    /// </summary>
    public static IReadOnlyList<string> DefaultDeny { get; } =
    [
        "127.0.0.0/8",         // IPv4 loopback: this host's own services
        "::1/128",             // IPv6 loopback
        "169.254.0.0/16",      // IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
        "fe80::/10",           // IPv6 link-local
        "100.100.100.200/32",  // Alibaba Cloud metadata
        "fd00:ec2::254/128",   // AWS metadata over IPv6
        "0.0.0.0/8",           // "this network"; 0.0.0.0 reaches the local host on Linux
        "::/128",              // unspecified, which also reaches the local host
        "224.0.0.0/4",         // IPv4 multicast
        "ff00::/8",            // IPv6 multicast
        "255.255.255.255/32",  // broadcast
    ];

    // IPv6 addresses that carry an IPv4 one, checked as that IPv4 address too: NAT64 (RFC 6052,
    // 64:ff9b::a9fe:a9fe reaches 169.254.169.254 through a NAT64 gateway, and the local-use
    // 64:ff9b:1::/48 of RFC 8215), IPv4-compatible (::a.b.c.d, deprecated), 6to4 (2002:AABB:CCDD::)
    // and Teredo (2001::/32, the client's address inverted in the last 32 bits).
    private static readonly Range Nat64 = new(IPNetwork.Parse("64:ff9b::/96"));
    private static readonly Range Nat64Local = new(IPNetwork.Parse("64:ff9b:1::/48"));
    private static readonly Range Compatible = new(IPNetwork.Parse("::/96"));
    private static readonly Range SixToFour = new(IPNetwork.Parse("2002::/16"));
    private static readonly Range Teredo = new(IPNetwork.Parse("2001::/32"));

    private readonly Range[] _defaultDeny;
    private readonly Range[] _deny;
    private readonly Range[] _allow;
    private volatile OwnListeners _own = OwnListeners.None;

    /// <exception cref="ArgumentException">A range is not valid CIDR text; the message names it.</exception>
    public DestinationPolicy(DestinationPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _defaultDeny = Parse(DefaultDeny, "DefaultDeny");
        _deny = Parse(options.Deny, nameof(options.Deny));
        _allow = Parse(options.Allow, nameof(options.Allow));
    }

    /// <summary>The defaults, nothing added, nothing allowed.</summary>
    public static DestinationPolicy Default { get; } = new(new DestinationPolicyOptions());

    /// <summary>Whether Keyway may connect to <paramref name="address"/> (on a port none of its listeners uses).</summary>
    public bool IsAllowed(IPAddress address) => IsAllowed(address, out _);

    /// <summary>Whether Keyway may connect to <paramref name="address"/>; if not, the deny range that matched.</summary>
    public bool IsAllowed(IPAddress address, out IPNetwork denyingRange)
    {
        var denial = Check(address, port: -1);
        denyingRange = denial?.Range ?? default;
        return denial is null;
    }

    /// <summary>Null when Keyway may connect to <paramref name="address"/>:<paramref name="port"/>; otherwise why not.</summary>
    public DestinationDenial? Check(IPAddress address, int port)
    {
        ArgumentNullException.ThrowIfNull(address);

        // Keyway calling itself would run requests as whoever the template names, in a loop: never, whatever the allow list says.
        if (_own.Covers(address, port))
            return new DestinationDenial(new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128), DenialSource.OwnListener);

        // An IPv6 address can carry an IPv4 one (::ffff:169.254.169.254, 64:ff9b::a9fe:a9fe):
        // both forms are checked, so neither list can be dodged by switching families.
        var embedded = EmbeddedIPv4(address);
        var allowed = TryMatch(_allow, address, embedded, out var allow);
        // Between the two settings the narrower range wins, a tie goes to deny: allowing 127.0.0.0/8
        // and denying 127.0.0.2/32 leaves 127.0.0.2 denied; denying 10.0.0.0/8 and allowing 10.1.0.0/16 opens 10.1.
        if (TryMatch(_deny, address, embedded, out var deny) && (!allowed || Specificity(allow) <= Specificity(deny)))
            return new DestinationDenial(deny, DenialSource.Setting);
        if (allowed)
            return null;

        return TryMatch(_defaultDeny, address, embedded, out var range) ? new DestinationDenial(range, DenialSource.Default) : null;
    }

    // An IPv4 /n is as narrow as an IPv6 /(n + 96).
    private static int Specificity(IPNetwork range) =>
        range.PrefixLength + (range.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 96 : 0);

    /// <summary>
    /// Records the addresses Keyway listens on (<c>http://127.0.0.1:7510</c>, <c>http://[::]:80</c>,
    /// <c>http://localhost:5000</c>), once the server has bound them. A connection to one of their
    /// ports on a loopback, unspecified or listening address (any of this host's addresses for a
    /// wildcard listener) is refused from then on.
    /// </summary>
    public void SetOwnListeners(IEnumerable<string> urls)
    {
        ArgumentNullException.ThrowIfNull(urls);
        _own = OwnListeners.From(urls);
    }

    /// <summary>Validates CIDR texts without building a policy; one message per bad entry.</summary>
    public static IReadOnlyList<string> Validate(DestinationPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        Collect(options.Deny, nameof(options.Deny), errors);
        Collect(options.Allow, nameof(options.Allow), errors);
        return errors;

        static void Collect(IReadOnlyList<string>? ranges, string name, List<string> errors)
        {
            for (var i = 0; ranges is not null && i < ranges.Count; i++)
            {
                if (!TryParseRange(ranges[i], out _))
                    errors.Add(DescribeBadRange(name, i, ranges[i]));
            }
        }
    }

    /// <summary>
    /// Parses <c>a.b.c.d/n</c>, <c>x::/n</c>, or a single address (a /32 or /128). Strict, so
    /// that a typo fails at start instead of denying the wrong range: IPv4 in plain dotted-quad
    /// form only (no <c>010.0.0.1</c> octal or <c>10.1</c> short forms), no IPv6 zone, and no
    /// bits set after the prefix (<c>10.0.0.1/8</c> is refused, not read as <c>10.0.0.0/8</c>).
    /// </summary>
    public static bool TryParseRange(string? text, out IPNetwork range)
    {
        range = default;
        if (string.IsNullOrWhiteSpace(text))
            return false;

        var span = text.AsSpan().Trim();
        var slash = span.IndexOf('/');
        var addressText = slash >= 0 ? span[..slash] : span;
        if (!IPAddress.TryParse(addressText, out var address) || addressText.Contains('%'))
            return false;
        if (address.AddressFamily == AddressFamily.InterNetwork && !addressText.SequenceEqual(address.ToString()))
            return false;

        var maxPrefix = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = maxPrefix;
        if (slash >= 0 &&
            (!int.TryParse(span[(slash + 1)..], System.Globalization.NumberStyles.None, null, out prefix) || prefix > maxPrefix))
        {
            return false;
        }

        var network = new IPNetwork(address, prefix);
        if (!network.BaseAddress.Equals(address))
            return false;

        range = network;
        return true;
    }

    private static Range[] Parse(IReadOnlyList<string>? ranges, string name)
    {
        if (ranges is null || ranges.Count == 0)
            return [];

        var result = new Range[ranges.Count];
        for (var i = 0; i < ranges.Count; i++)
        {
            if (!TryParseRange(ranges[i], out var network))
                throw new ArgumentException(DescribeBadRange(name, i, ranges[i]), nameof(ranges));
            result[i] = new Range(network);
        }

        return result;
    }

    private static string DescribeBadRange(string name, int index, string? text) =>
        $"Outbound destination {name}[{index}] '{text}' is not a CIDR range. Expected a network address " +
        "and prefix length such as 10.0.0.0/8 or fd00::/8 (with no bits set after the prefix), or a single address.";

    private static IPAddress? EmbeddedIPv4(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
            return null;
        if (address.IsIPv4MappedToIPv6)
            return address.MapToIPv4();

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        if (Nat64.Contains(address) || Nat64Local.Contains(address))
            return new IPAddress(bytes[12..]);
        if (Compatible.Contains(address))
            // :: and ::1 are themselves (unspecified, loopback); ::a.b.c.d is a.b.c.d.
            return bytes[12..].SequenceCompareTo((ReadOnlySpan<byte>)[0, 0, 0, 1]) > 0 ? new IPAddress(bytes[12..]) : null;
        if (SixToFour.Contains(address))
            return new IPAddress(bytes[2..6]);
        if (Teredo.Contains(address))
        {
            Span<byte> client = stackalloc byte[4];
            for (var i = 0; i < 4; i++)
                client[i] = (byte)~bytes[12 + i];
            return new IPAddress(client);
        }

        return null;
    }

    /// <summary>The narrowest range that holds the address or the IPv4 address it carries (the first of equals).</summary>
    private static bool TryMatch(Range[] ranges, IPAddress address, IPAddress? embedded, out IPNetwork match)
    {
        var found = false;
        match = default;
        foreach (var range in ranges)
        {
            if ((range.Contains(address) || (embedded is not null && range.Contains(embedded))) &&
                (!found || Specificity(range.Network) > Specificity(match)))
            {
                match = range.Network;
                found = true;
            }
        }

        return found;
    }

    /// <summary>The ports Keyway listens on, and on which addresses (null: every address of this host).</summary>
    private sealed class OwnListeners(IReadOnlyList<(IPAddress? Address, int Port)> listeners, IReadOnlySet<IPAddress> hostAddresses)
    {
        public static readonly OwnListeners None = new([], new HashSet<IPAddress>());

        public static OwnListeners From(IEnumerable<string> urls)
        {
            var listeners = new List<(IPAddress?, int)>();
            foreach (var url in urls)
            {
                var binding = BindingAddress.Parse(url);
                var host = binding.Host.Trim('[', ']');
                IPAddress? address = host is "*" or "+" or "" || !IPAddress.TryParse(host, out var parsed) || parsed.Equals(IPAddress.Any) || parsed.Equals(IPAddress.IPv6Any)
                    ? null
                    : Normalize(parsed);
                // A host name (localhost, or this machine's name) is treated as every address of this host.
                listeners.Add((address, binding.Port));
            }

            var hostAddresses = new HashSet<IPAddress>();
            if (listeners.Any(l => l.Item1 is null))
            {
                foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
                {
                    foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                        hostAddresses.Add(Normalize(unicast.Address));
                }
            }

            return new OwnListeners(listeners, hostAddresses);
        }

        public bool Covers(IPAddress address, int port)
        {
            if (listeners.Count == 0 || port < 0)
                return false;

            var target = Normalize(address);
            foreach (var (listening, listeningPort) in listeners)
            {
                if (listeningPort != port)
                    continue;
                // Loopback and unspecified reach every listener on this host; a wildcard listener answers on every host address.
                if (IPAddress.IsLoopback(target) || target.Equals(IPAddress.Any) || target.Equals(IPAddress.IPv6Any) ||
                    (listening is null ? hostAddresses.Contains(target) : listening.Equals(target)))
                    return true;
            }

            return false;
        }

        private static IPAddress Normalize(IPAddress address)
        {
            if (address.IsIPv4MappedToIPv6)
                return address.MapToIPv4();
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
                return new IPAddress(address.GetAddressBytes());
            return address;
        }
    }

    /// <summary>
    /// A range with its containment test done here on the address bits: in .NET 10,
    /// <see cref="IPNetwork.Contains"/> answers true for <c>::ffff:0.0.0.0</c> in unrelated IPv6
    /// ranges (observed with <c>fe80::/10</c>, <c>2001:db8::/32</c>, <c>::/128</c>), and a
    /// policy must not depend on that.
    /// </summary>
    private readonly struct Range
    {
        private readonly UInt128 _bits;
        private readonly UInt128 _mask;

        public Range(IPNetwork network)
        {
            Network = network;
            _bits = ToBits(network.BaseAddress);
            var width = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            _mask = network.PrefixLength == 0 ? UInt128.Zero : UInt128.MaxValue << (width - network.PrefixLength);
            if (width == 32)
                _mask &= uint.MaxValue;
        }

        public IPNetwork Network { get; }

        public bool Contains(IPAddress address) =>
            address.AddressFamily == Network.BaseAddress.AddressFamily && (ToBits(address) & _mask) == _bits;

        private static UInt128 ToBits(IPAddress address)
        {
            Span<byte> bytes = stackalloc byte[16];
            address.TryWriteBytes(bytes, out var written);
            return written == 4 ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt128BigEndian(bytes);
        }
    }
}
