using Keyway.Access;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>
/// One credential as the health view shows it: a resource with a dynamic credential (OAuth 2.0 or a
/// custom flow) in one environment, for one owner (<c>shared</c> or a user id, with the user's name).
/// <c>State</c> is a credential state as <c>GET …/credential</c> reports it (<c>valid</c>, <c>expiring</c>,
/// <c>expired</c>, <c>refreshing</c>, <c>failed</c>, <c>reconnect_required</c>, <c>not_connected</c>);
/// <c>FailedAt</c> and <c>LastError</c> the last failure, if the last refresh failed; <c>Renewable</c>
/// whether it renews itself without a person (a grant such as client credentials, or a refresh token). Never a token.
/// </summary>
internal sealed record CredentialHealthItem(
    string Resource, string Environment, string Owner, string? OwnerName, string State, DateTimeOffset? ExpiresAt,
    DateTimeOffset? LastRefreshedAt, long FailureCount, string? LastError, DateTimeOffset? FailedAt, bool Renewable);

/// <summary>
/// The state of every dynamic credential a caller may see, for the console's home page, the resource
/// list's badges and <see cref="Attention"/>. What a caller sees: resources it may read, in the
/// environments it may read them in; of a per-person credential its own (listed as
/// <c>not_connected</c> until it connects) and, for an admin of the environment, everyone's who has one.
/// A credential whose last refresh failed counts as <c>failed</c> even while its token still works:
/// it will stop working, and nobody else notices first.
/// </summary>
internal sealed class CredentialHealth(
    Database database, ResourceService resources, ResourceResolver resolver, VariableService variables, UserStore users,
    CredentialEngine engine, AccessPolicy access, VariableOptions options, TimeProvider time)
{
    private static readonly HashSet<string> Dynamic = new(StringComparer.Ordinal) { "oauth2", "custom" };

    /// <summary>How far ahead "expires soon" looks: the longest alert lead time, as for variables.</summary>
    public TimeSpan Window => options.LeadTimes.Count > 0 ? options.LeadTimes.Max() : TimeSpan.FromDays(30);

    public async Task<IReadOnlyList<CredentialHealthItem>> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var environments = (await variables.ListEnvironmentsAsync(cancellationToken)).Select(e => e.Name).ToList();
        List<Row> rows;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            rows = (await connection.QueryAsync<Row>(
                """
                SELECT resource, environment, owner, params_hash, state, expires_at, last_refreshed_at, failure_count,
                    last_error, refresh_started_at, updated_at, CASE WHEN access_token IS NULL THEN 0 ELSE 1 END AS has_token,
                    CASE WHEN refresh_token IS NULL THEN 0 ELSE 1 END AS has_refresh_token
                FROM credentials
                """)).ToList();
        }

        var byKey = rows.ToLookup(r => (r.Resource, r.Environment));
        Dictionary<string, string>? names = null;
        var items = new List<CredentialHealthItem>();
        foreach (var resource in await resources.ListAsync(cancellationToken))
        {
            if (resource.Definition.Auth?.Type is not { } type || !Dynamic.Contains(type))
            {
                continue;
            }

            foreach (var environment in environments)
            {
                if (!access.Allows(caller, Permission.Read, resource.Name, environment))
                {
                    continue;
                }

                CredentialBinding binding;
                try
                {
                    var compiled = await resources.GetCompiledAsync(resource.Name, cancellationToken);
                    if ((await resolver.ResolveAsync(compiled, environment, caller, cancellationToken)).Credential is not { } resolved)
                    {
                        continue;
                    }

                    binding = resolved;
                }
                catch (KeywayException)
                {
                    // Not configured in this environment (a variable it needs is not set there): it has no credential here to speak of.
                    continue;
                }

                var mine = binding.Shared ? CredentialKey.Shared : caller.UserId;
                var stored = byKey[(resource.Name, environment)].ToList();
                var own = stored.FirstOrDefault(r => r.Owner == mine);
                items.Add(Item(new CredentialKey(resource.Name, environment, mine), own, binding, now, null));
                if (!binding.Shared && access.Allows(caller, Permission.Admin, null, environment))
                {
                    foreach (var other in stored.Where(r => r.Owner != mine && r.Owner != CredentialKey.Shared))
                    {
                        names ??= (await users.ListAsync(cancellationToken)).ToDictionary(u => u.Id, u => u.Name, StringComparer.Ordinal);
                        // Another person's settings may differ (templates can read current_user): their row's own state stands.
                        items.Add(Item(new CredentialKey(resource.Name, environment, other.Owner), other, null, now, names.GetValueOrDefault(other.Owner)));
                    }
                }
            }
        }

        return items;

        CredentialHealthItem Item(CredentialKey key, Row? row, CredentialBinding? binding, DateTimeOffset now, string? ownerName)
        {
            var failedAt = row is { FailureCount: > 0, LastError: not null } ? Time.From(row.UpdatedAt) : (DateTimeOffset?)null;
            return new CredentialHealthItem(key.Resource, key.Environment, key.Owner,
                key.Owner == caller.UserId ? caller.UserName : ownerName, StateOf(key, row, binding, now),
                Time.From(row?.ExpiresAt), Time.From(row?.LastRefreshedAt), row?.FailureCount ?? 0, row?.LastError, failedAt,
                row?.HasRefreshToken == 1 || binding is { Provider.CanAcquire: true });
        }
    }

    /// <summary>
    /// As <see cref="CredentialService.StatusAsync"/> decides it, from a row read in bulk, but for what
    /// needs a person: a failing refresh is <c>failed</c>; a token that renews itself is <c>valid</c>
    /// even past its expiry; one that does not is <c>expiring</c> within <see cref="Window"/>.
    /// </summary>
    private string StateOf(CredentialKey key, Row? row, CredentialBinding? binding, DateTimeOffset now)
    {
        if (engine.IsRefreshing(key) || (row?.RefreshStartedAt is not null && (binding is null || row.ParamsHash == binding.Provider.ParametersHash)))
        {
            return "refreshing";
        }

        if (row is null || (row.HasToken == 0 && row.State is not ("failed" or "reconnect_required")))
        {
            return "not_connected";
        }

        // A credential the method renews by itself (a refresh token, or a grant needing no person) is
        // connected even when its token lapsed unused: the next request obtains a new one.
        var renewable = row.HasRefreshToken != 0 || binding is { Provider.CanAcquire: true };
        if (binding is not null && row.ParamsHash != binding.Provider.ParametersHash)
        {
            return binding.Provider.CanAcquire ? "valid" : "reconnect_required";
        }

        if (row.State is "failed" or "reconnect_required")
        {
            return row.State;
        }

        if (row.FailureCount > 0 && row.LastError is not null)
        {
            return "failed";
        }

        if (Time.From(row.ExpiresAt) is { } expires)
        {
            if (!renewable && now >= expires)
            {
                return "expired";
            }

            // Nothing renews it without a person: it lapses at its expiry.
            if (!renewable && expires - now <= Window)
            {
                return "expiring";
            }
        }

        return "valid";
    }

    private sealed class Row
    {
        public string Resource { get; init; } = "";
        public string Environment { get; init; } = "";
        public string Owner { get; init; } = "";
        public string ParamsHash { get; init; } = "";
        public string State { get; init; } = "";
        public long? ExpiresAt { get; init; }
        public long? LastRefreshedAt { get; init; }
        public long FailureCount { get; init; }
        public string? LastError { get; init; }
        public long? RefreshStartedAt { get; init; }
        public long UpdatedAt { get; init; }
        public long HasToken { get; init; }
        public long HasRefreshToken { get; init; }
    }
}

internal static class CredentialHealthEndpoints
{
    internal sealed record CredentialHealthList(DateTimeOffset Now, IReadOnlyList<CredentialHealthItem> Credentials);

    public static RouteGroupBuilder MapCredentialHealth(this RouteGroupBuilder api)
    {
        api.MapGet("/status/credentials", async (CredentialHealth health, TimeProvider time, HttpContext http, CancellationToken ct) =>
                TypedResults.Ok(new CredentialHealthList(time.GetUtcNow(), await health.ListAsync(Caller.From(http.User)!, ct))))
            .Requires(Permission.Read)
            .WithTags("Status")
            .WithSummary("The state of every dynamic credential the caller may see (resource × environment × owner), with its last failure. Never a token.");
        return api;
    }
}
