using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Keyway.Outbound;

/// <summary>Where Keyway may connect, as CIDR ranges (<c>10.0.0.0/8</c>, <c>fd00::/8</c>) or single addresses.</summary>
/// <remarks>
/// <para><see cref="Deny"/> adds to <see cref="DestinationPolicy.DefaultDeny"/>, it does not
/// replace it, so adding a range can never re-open the cloud metadata addresses by accident.
/// <see cref="Allow"/> overrides both (for example a device on a link-local address).</para>
/// <para>Loopback and private ranges are allowed by default: internal tools call internal APIs.
/// An operator who wants Keyway to reach only the public internet adds
/// <c>127.0.0.0/8</c>, <c>::1/128</c>, <c>10.0.0.0/8</c>, <c>172.16.0.0/12</c>,
/// <c>192.168.0.0/16</c>, <c>100.64.0.0/10</c> and <c>fc00::/7</c> to <see cref="Deny"/>.</para>
/// </remarks>
internal sealed record DestinationPolicyOptions
{
    /// <summary>Ranges denied on top of the defaults.</summary>
    public IReadOnlyList<string> Deny { get; init; } = [];

    /// <summary>Ranges allowed even when a deny range (default or configured) covers them.</summary>
    public IReadOnlyList<string> Allow { get; init; } = [];
}

/// <summary>
/// Decides whether Keyway may connect to an address. Checked at connect time on the address
/// actually connected to (see <see cref="OutboundHandler"/>), so DNS rebinding cannot slip past it.
/// </summary>
internal sealed class DestinationPolicy
{
    /// <summary>
    /// Denied unless allowed explicitly: link-local (cloud metadata at 169.254.169.254 among it),
    /// other metadata addresses, "this network", unspecified, multicast and broadcast.
    /// </summary>
    public static IReadOnlyList<string> DefaultDeny { get; } =
    [
        "169.254.0.0/16",      // IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
        "fe80::/10",           // IPv6 link-local
        "100.100.100.200/32",  // Alibaba Cloud metadata
        "fd00:ec2::254/128",   // AWS metadata over IPv6
        "0.0.0.0/8",           // "this network"; 0.0.0.0 reaches the local host on Linux
        "::/128",              // unspecified
        "224.0.0.0/4",         // IPv4 multicast
        "ff00::/8",            // IPv6 multicast
        "255.255.255.255/32",  // broadcast
    ];

    // NAT64 (RFC 6052) embeds an IPv4 address in its last 32 bits; through a NAT64 gateway
    // 64:ff9b::a9fe:a9fe reaches 169.254.169.254.
    private static readonly Range Nat64 = new(IPNetwork.Parse("64:ff9b::/96"));

    private readonly Range[] _deny;
    private readonly Range[] _allow;

    /// <exception cref="ArgumentException">A range is not valid CIDR text; the message names it.</exception>
    public DestinationPolicy(DestinationPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _deny = [.. Parse(DefaultDeny, "DefaultDeny"), .. Parse(options.Deny, nameof(options.Deny))];
        _allow = Parse(options.Allow, nameof(options.Allow));
    }

    /// <summary>The defaults, nothing added, nothing allowed.</summary>
    public static DestinationPolicy Default { get; } = new(new DestinationPolicyOptions());

    /// <summary>Whether Keyway may connect to <paramref name="address"/>.</summary>
    public bool IsAllowed(IPAddress address) => IsAllowed(address, out _);

    /// <summary>Whether Keyway may connect to <paramref name="address"/>; if not, the deny range that matched.</summary>
    public bool IsAllowed(IPAddress address, out IPNetwork denyingRange)
    {
        ArgumentNullException.ThrowIfNull(address);

        // An IPv6 address can carry an IPv4 one (::ffff:169.254.169.254, 64:ff9b::a9fe:a9fe):
        // both forms are checked, so neither list can be dodged by switching families.
        var embedded = EmbeddedIPv4(address);
        denyingRange = default;
        if (!TryMatch(_deny, address, embedded, out var denied))
            return true;
        if (TryMatch(_allow, address, embedded, out _))
            return true;

        denyingRange = denied;
        return false;
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
        if (Nat64.Contains(address))
        {
            Span<byte> bytes = stackalloc byte[16];
            address.TryWriteBytes(bytes, out _);
            return new IPAddress(bytes[12..]);
        }

        return null;
    }

    private static bool TryMatch(Range[] ranges, IPAddress address, IPAddress? embedded, out IPNetwork match)
    {
        foreach (var range in ranges)
        {
            if (range.Contains(address) || (embedded is not null && range.Contains(embedded)))
            {
                match = range.Network;
                return true;
            }
        }

        match = default;
        return false;
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
