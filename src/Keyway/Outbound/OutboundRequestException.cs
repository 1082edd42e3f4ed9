namespace Keyway.Outbound;

/// <summary>
/// A request Keyway refuses to send on a caller's behalf. <see cref="Code"/> is stable and
/// machine-readable; the message says why in plain words and never holds a header value, a
/// body or a secret.
/// </summary>
internal sealed class OutboundRequestException : Exception
{
    /// <summary>The relative path would leave the resource's base URL, or is malformed.</summary>
    public const string PathNotAllowed = "path_not_allowed";

    /// <summary>A query parameter cannot be sent (for example an empty name).</summary>
    public const string InvalidQuery = "invalid_query";

    /// <summary>A header name or value cannot be sent (CR, LF, NUL, not a token, …).</summary>
    public const string InvalidHeader = "invalid_header";

    /// <summary>Every address the destination resolves to is on the deny list.</summary>
    public const string DestinationDenied = "destination_denied";

    public OutboundRequestException(string code, string message)
        : base(message)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
    }

    public OutboundRequestException(string code, string message, Exception? innerException)
        : base(message, innerException)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
    }

    /// <summary>The stable error code, e.g. <c>path_not_allowed</c> or <c>destination_denied</c>.</summary>
    public string Code { get; }

    /// <summary>
    /// Finds an <see cref="OutboundRequestException"/> in an exception's inner chain.
    /// <see cref="System.Net.Http.SocketsHttpHandler"/> wraps what its connect callback throws
    /// in an <see cref="HttpRequestException"/>; this is how a caller recognises a denied
    /// destination.
    /// </summary>
    public static OutboundRequestException? FindIn(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is OutboundRequestException found)
                return found;
        }

        return null;
    }
}
