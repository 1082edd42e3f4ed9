using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// Which values a resolved resource puts on a request may be shown in the request as sent (a run's
/// <c>outbound</c>, the resource test's final request), decided by provenance (<see cref="TemplateProvenance"/>):
/// a header or query parameter rendered from a template that reads nothing secret is shown with its value;
/// one whose template reads a secret, the environment's variables as a whole, or runs a script, and every
/// credential placement, is withheld with the reason. What the request carries that is on neither list
/// (what the auth method or a signature added) is withheld too: only known provenance is shown.
/// </summary>
internal sealed class ShownValues
{
    public static readonly ShownValues None = new([], [], new Dictionary<string, string>(), new Dictionary<string, string>(), null);

    private ShownValues(
        IReadOnlyList<KeyValuePair<string, string>> headers, IReadOnlyList<KeyValuePair<string, string>> query,
        IReadOnlyDictionary<string, string> withheldHeaders, IReadOnlyDictionary<string, string> withheldQuery, string? baseUrlWithheld)
    {
        Headers = headers;
        Query = query;
        WithheldHeaders = withheldHeaders;
        WithheldQuery = withheldQuery;
        BaseUrlWithheld = baseUrlWithheld;
    }

    /// <summary>Headers rendered from templates that read nothing secret, with their values.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary>Query parameters rendered from templates that read nothing secret, with their values.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Query { get; }

    /// <summary>Header names (any case) whose values are withheld, with why.</summary>
    public IReadOnlyDictionary<string, string> WithheldHeaders { get; }

    /// <summary>Query parameter names whose values are withheld, with why.</summary>
    public IReadOnlyDictionary<string, string> WithheldQuery { get; }

    /// <summary>Why the base URL is withheld (its template reads a secret), or null.</summary>
    public string? BaseUrlWithheld { get; }

    /// <summary>Collects, while a resource is resolved, what each of its values was rendered from.</summary>
    public sealed class Builder(Func<string, bool> isSecret)
    {
        private readonly List<KeyValuePair<string, string>> _headers = [];
        private readonly List<KeyValuePair<string, string>> _query = [];
        private readonly Dictionary<string, string> _withheldHeaders = new(StringComparer.OrdinalIgnoreCase);
        private readonly Dictionary<string, string> _withheldQuery = new(StringComparer.Ordinal);

        public void Header(string name, Template template, string value)
        {
            if (TemplateProvenance.WithheldBecause(template, isSecret) is { } reason)
            {
                _withheldHeaders[name] = reason;
            }
            else
            {
                _headers.Add(new(name, value));
            }
        }

        public void Query(string name, Template template, string value)
        {
            if (TemplateProvenance.WithheldBecause(template, isSecret) is { } reason)
            {
                _withheldQuery[name] = reason;
            }
            else
            {
                _query.Add(new(name, value));
            }
        }

        /// <summary>A credential placement (static auth): its value is the credential, whatever its template reads.</summary>
        public void Credential(Placement location, string name)
        {
            const string Reason = "the resource's credential";
            switch (location)
            {
                case Placement.Header:
                    _headers.RemoveAll(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase));
                    _withheldHeaders[name] = Reason;
                    break;
                case Placement.Query:
                    _query.RemoveAll(q => q.Key == name);
                    _withheldQuery[name] = Reason;
                    break;
                default:
                    // Cookies are withheld as a whole header: see OutboundCapture.
                    break;
            }
        }

        public ShownValues Build(string? baseUrlWithheld) => new(_headers, _query, _withheldHeaders, _withheldQuery, baseUrlWithheld);
    }
}
