using System.Globalization;
using Keyway.Api;

namespace Keyway.Outbound;

/// <summary>
/// An origin a secret may be sent to: <c>https://api.github.com</c>, <c>http://10.0.0.5:8080</c>, or
/// with a wildcard first label, <c>https://*.example.com</c> (any host below example.com, not
/// example.com itself). Scheme, host and port all have to match; a missing port is the scheme's default.
/// </summary>
internal sealed class OriginPattern
{
    private readonly string _host;
    private readonly bool _wildcard;

    private OriginPattern(string scheme, string host, int port, bool wildcard)
    {
        Scheme = scheme;
        _host = host;
        Port = port;
        _wildcard = wildcard;
    }

    public string Scheme { get; }

    public int Port { get; }

    /// <summary>The pattern in its canonical form (lower case, default port left out).</summary>
    public override string ToString() =>
        $"{Scheme}://{(_wildcard ? "*." : "")}{_host}{(Port == DefaultPort(Scheme) ? "" : ":" + Port.ToString(CultureInfo.InvariantCulture))}";

    /// <summary>Parses an origin pattern, or says why it is not one.</summary>
    public static bool TryParse(string? text, out OriginPattern? pattern, out string? error)
    {
        pattern = null;
        error = null;
        var value = text?.Trim() ?? "";
        var wildcard = false;
        var schemeEnd = value.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd > 0 && value.AsSpan(schemeEnd + 3).StartsWith("*."))
        {
            wildcard = true;
            value = string.Concat(value.AsSpan(0, schemeEnd + 3), value.AsSpan(schemeEnd + 5));
        }

        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            error = $"'{text}' is not an origin; write it as https://api.example.com (or https://*.example.com for every host below it).";
            return false;
        }

        if (uri.UserInfo.Length > 0 || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.AbsolutePath != "/" || value.TrimEnd('/').Length < value.Length - 1)
        {
            error = $"'{text}' is not an origin: give only the scheme, host and port (https://api.example.com), no path, query or credentials.";
            return false;
        }

        var host = uri.IdnHost.ToLowerInvariant();
        if (wildcard && (uri.HostNameType != UriHostNameType.Dns || !host.Contains('.', StringComparison.Ordinal)))
        {
            error = $"'{text}': a wildcard stands only before a domain with at least two labels (https://*.example.com).";
            return false;
        }

        pattern = new OriginPattern(uri.Scheme, host, uri.Port, wildcard);
        return true;
    }

    /// <summary>Whether <paramref name="destination"/>'s origin matches.</summary>
    public bool Matches(Uri destination)
    {
        if (!string.Equals(destination.Scheme, Scheme, StringComparison.OrdinalIgnoreCase) || destination.Port != Port)
        {
            return false;
        }

        var host = destination.IdnHost;
        if (!_wildcard)
        {
            return string.Equals(host, _host, StringComparison.OrdinalIgnoreCase);
        }

        return host.Length > _host.Length + 1 &&
               host.EndsWith(_host, StringComparison.OrdinalIgnoreCase) &&
               host[host.Length - _host.Length - 1] == '.';
    }

    /// <summary>The origin of a URL, as people read it (<c>https://api.example.com</c>).</summary>
    public static string OriginOf(Uri url) => url.GetLeftPart(UriPartial.Authority);

    private static int DefaultPort(string scheme) => scheme == Uri.UriSchemeHttps ? 443 : 80;
}

/// <summary>The origins one secret variable is bound to.</summary>
internal sealed record SecretBinding(string Variable, string Environment, IReadOnlyList<OriginPattern> Origins)
{
    public bool Allows(Uri destination)
    {
        foreach (var origin in Origins)
        {
            if (origin.Matches(destination))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// The bound secrets a request carries. Checked at send time on the URL actually requested (each
/// hop of a followed redirect included): a secret placed in a request to another origin is refused
/// before a byte leaves, whoever changed the resource's destination.
/// </summary>
internal sealed class SecretBindings
{
    public static readonly SecretBindings None = new([]);

    private readonly SecretBinding[] _bindings;

    public SecretBindings(IEnumerable<SecretBinding> bindings) => _bindings = [.. bindings];

    public bool IsEmpty => _bindings.Length == 0;

    /// <summary>The first binding that refuses <paramref name="destination"/>, or null.</summary>
    public SecretBinding? FirstRefusing(Uri destination)
    {
        foreach (var binding in _bindings)
        {
            if (!binding.Allows(destination))
            {
                return binding;
            }
        }

        return null;
    }

    /// <summary>Throws <c>403 origin_not_allowed</c> when a bound secret may not go to <paramref name="destination"/>.</summary>
    /// <param name="destination">The URL the request goes to.</param>
    /// <param name="what">What is being sent, for the message ("the request", "the token request", "step 'login'").</param>
    public void Demand(Uri destination, string what)
    {
        if (FirstRefusing(destination) is { } refusing)
        {
            throw Refused(refusing, destination, what);
        }
    }

    public static KeywayException Refused(SecretBinding binding, Uri destination, string what) =>
        new(StatusCodes.Status403Forbidden, "origin_not_allowed",
            $"The secret variable '{binding.Variable}' ({binding.Environment}) may be sent only to {string.Join(", ", binding.Origins)}; " +
            $"Keyway did not send {what} to {OriginPattern.OriginOf(destination)}. If that origin is right, an admin binds the secret to it too: " +
            $"keyway var bind {binding.Variable} {OriginPattern.OriginOf(destination)} --env {binding.Environment}");
}
