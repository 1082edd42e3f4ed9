using System.Collections.Frozen;
using Keyway.Api;
using Keyway.Environments;
using Microsoft.AspNetCore.Authorization;

namespace Keyway.Access;

/// <summary>What a caller wants to do. Resource permissions are ordered: own ⊇ edit ⊇ use ⊇ read.</summary>
internal enum Permission
{
    /// <summary>See a resource's configuration (never its secrets): any grant on the resource gives it.</summary>
    Read,

    /// <summary>Run queries and proxy requests through a resource.</summary>
    Use,

    /// <summary>Change a resource's configuration (never read its secrets).</summary>
    Edit,

    /// <summary>Edit, delete and grant permissions on a resource.</summary>
    Own,

    /// <summary>Manage environments, variables, users, groups and other people's keys.</summary>
    Admin,
}

/// <summary>
/// The one place that decides whether a caller may do something. Every endpoint, the proxy and
/// the CLI (through the API) reach it, either through <see cref="AccessFilter"/> (route-level) or by
/// calling <see cref="Demand"/> once the environment is known (runs, the proxy, saved-query runs).
/// </summary>
/// <remarks>
/// Grants live in an immutable in-memory snapshot of the whole <c>grants</c> table, indexed by
/// resource and then by user id or group name: a check is a handful of dictionary probes and
/// allocates nothing (the proxy's hot path). The snapshot is reloaded at start and on every
/// <c>grants</c>, <c>users</c> or <c>all</c> change (from this replica or, through the
/// <see cref="ChangeRelay"/>, another one); a writer waits for the reload, so it reads its own change.
/// </remarks>
internal sealed partial class AccessPolicy : IDisposable
{
    private readonly GrantStore? _store;
    private readonly ChangeFeed? _changes;
    private readonly TimeProvider _time;
    private readonly ILogger<AccessPolicy>? _logger;
    private readonly SemaphoreSlim _reload = new(1, 1);
    private volatile Snapshot _snapshot = Snapshot.Empty;
    private long _requested;

    public AccessPolicy(GrantStore store, ChangeFeed changes, TimeProvider time, ILogger<AccessPolicy> logger)
    {
        _store = store;
        _changes = changes;
        _time = time;
        _logger = logger;
    }

    /// <summary>A policy over a fixed set of grants (tests).</summary>
    internal AccessPolicy(IEnumerable<GrantInfo> grants)
    {
        _time = TimeProvider.System;
        _snapshot = Snapshot.Build(grants);
    }

    public void Dispose() => _reload.Dispose();

    public void Subscribe() => _changes!.Changed += change =>
    {
        if (change.Kind is GrantStore.ChangeKind or UserStore.ChangeKind || change.IsAll)
        {
            _ = ReloadInBackgroundAsync();
        }
    };

    /// <summary>Reads every grant and swaps the snapshot. Reloads are serialized, so the last one started reads last.</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken)
    {
        if (_store is null)
        {
            return;
        }

        Interlocked.Increment(ref _requested);
        await _reload.WaitAsync(cancellationToken);
        try
        {
            _snapshot = Snapshot.Build(await _store.ListAllAsync(cancellationToken));
        }
        finally
        {
            _reload.Release();
        }
    }

    private async Task ReloadInBackgroundAsync()
    {
        // A stale snapshot could keep a revoked grant alive: retry until a reload succeeds, unless a newer one is requested.
        for (var attempt = 0; ; attempt++)
        {
            var requested = Interlocked.Read(ref _requested);
            try
            {
                await ReloadAsync(CancellationToken.None);
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (_logger is not null)
                {
                    Log.ReloadFailed(_logger, e.GetType().Name, attempt);
                }

                if (Interlocked.Read(ref _requested) > requested + 1)
                {
                    return;
                }

                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, 1 << Math.Min(attempt, 5))), _time);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="caller"/> may do <paramref name="permission"/> on <paramref name="resource"/>
    /// in <paramref name="environment"/>. A null resource is a route-level check of an endpoint
    /// whose resource is not in its route (lists filter, handlers demand). A null environment means
    /// "in some environment" for read and use, and "in every environment" for edit and own (a
    /// resource's configuration is shared by all environments).
    /// </summary>
    public bool Allows(Caller caller, Permission permission, string? resource, string? environment) =>
        ScopeAllows(caller.Scope, permission, resource, environment) && GrantsAllow(caller, permission, resource, environment);

    private bool GrantsAllow(Caller caller, Permission permission, string? resource, string? environment)
    {
        if (caller.IsAdmin)
        {
            return true;
        }

        if (permission == Permission.Admin)
        {
            return false;
        }

        if (resource is null)
        {
            return permission <= Permission.Use;
        }

        var snapshot = _snapshot;
        var level = (int)permission;
        return Matches(snapshot, resource, caller, level, environment) || Matches(snapshot, GrantStore.Any, caller, level, environment);
    }

    private static bool Matches(Snapshot snapshot, string resource, Caller caller, int level, string? environment)
    {
        if (!snapshot.ByResource.TryGetValue(resource, out var grants))
        {
            return false;
        }

        if (grants.Users.TryGetValue(caller.UserId, out var entries) && AnyMatch(entries, level, environment))
        {
            return true;
        }

        var groups = caller.Groups;
        for (var i = 0; i < groups.Count; i++)
        {
            if (grants.Groups.TryGetValue(groups[i], out entries) && AnyMatch(entries, level, environment))
            {
                return true;
            }
        }

        return AnyMatch(grants.Everyone, level, environment);
    }

    private static bool AnyMatch(Entry[] entries, int level, string? environment)
    {
        foreach (var entry in entries)
        {
            if (entry.Level < level)
            {
                continue;
            }

            if (level == (int)Permission.Read || entry.Environment == GrantStore.Any ||
                (environment is null ? level <= (int)Permission.Use : entry.Environment == environment))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>An API key's scope only narrows what its owner may do.</summary>
    internal static bool ScopeAllows(KeyScope? scope, Permission permission, string? resource, string? environment)
    {
        if (scope is null)
        {
            return true;
        }

        if (permission == Permission.Admin && (scope.Resources is not null || scope.Environments is not null))
        {
            // A key limited to some resources or environments acts on those alone, never on users, variables or keys.
            return false;
        }

        if (scope.Resources is not null && resource is not null && !Contains(scope.Resources, resource))
        {
            return false;
        }

        if (scope.Environments is not null)
        {
            if (environment is not null ? !Contains(scope.Environments, environment) : permission >= Permission.Edit && resource is not null)
            {
                return false;
            }
        }

        return scope.Actions is null || ActionAllowed(scope.Actions, permission);
    }

    /// <summary>
    /// Whether a key's scope leaves its owner's account to it: creating keys, revoking the owner's
    /// other keys, changing the owner's password. Only an unscoped key (or a session) and a key
    /// whose scope is admin over everything (<c>actions</c> holding <c>admin</c>, no resource or
    /// environment limit) do: any narrower key could mint a key wider than itself, or lock its owner out.
    /// </summary>
    internal static bool ScopeCoversAccount(KeyScope? scope) =>
        scope is null || (scope.Resources is null && scope.Environments is null && (scope.Actions is null || ActionAllowed(scope.Actions, Permission.Admin)));

    /// <summary>Throws a 403 problem unless <see cref="ScopeCoversAccount"/> holds for the caller's key.</summary>
    public static void DemandAccount(Caller caller, string what)
    {
        if (!ScopeCoversAccount(caller.Scope))
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, "forbidden",
                $"The API key '{caller.ApiKeyId}' of '{caller.UserName}' is scoped ({Describe(caller.Scope!)}); a scoped key may not {what}. " +
                "Use an unscoped key of the owner, or sign in to the console.");
        }
    }

    private static bool ActionAllowed(IReadOnlyList<string> actions, Permission permission)
    {
        for (var i = 0; i < actions.Count; i++)
        {
            var granted = ParseAction(actions[i]);
            // Each action includes those below it; admin includes everything.
            if (granted is { } g && (g == Permission.Admin || (permission != Permission.Admin && g >= permission)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The scope action of a key that reads the whole configuration (<c>GET /api/v1/config/export</c>,
    /// all <c>keyway plan</c> reads) and nothing else: a CI job's plan key. Its owner must be an admin;
    /// it allows no permission of the ladder, so every other route refuses it.
    /// </summary>
    public const string ConfigRead = "config:read";

    /// <summary>Whether a key's scope names <paramref name="action"/> (a scope action outside the permission ladder) with no resource or environment limit.</summary>
    internal static bool ScopeNames(KeyScope? scope, string action) =>
        scope is { Resources: null, Environments: null, Actions: { } actions } && Contains(actions, action);

    /// <summary>A scope action name: read, use, edit, own or admin (<see cref="ConfigRead"/> is not on the ladder).</summary>
    public static Permission? ParseAction(string action) => action switch
    {
        "read" => Permission.Read,
        "use" => Permission.Use,
        "edit" => Permission.Edit,
        "own" => Permission.Own,
        "admin" => Permission.Admin,
        _ => null,
    };

    private static bool Contains(IReadOnlyList<string> list, string value)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i], value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Throws a 403 problem that says what is missing and whom to ask.</summary>
    public void Demand(Caller caller, Permission permission, string? resource, string? environment)
    {
        if (Allows(caller, permission, resource, environment))
        {
            return;
        }

        var name = permission.ToString().ToLowerInvariant();
        var on = resource is null ? "" : $" on resource '{resource}'";
        var inEnv = environment is null ? "" : $" in environment '{environment}'";
        string message;
        if (!ScopeAllows(caller.Scope, permission, resource, environment))
        {
            message = $"The API key '{caller.ApiKeyId}' of '{caller.UserName}' is scoped ({Describe(caller.Scope!)}); it may not {name}{on}{inEnv}. " +
                      $"Use a key whose scope covers it ('keyway key create --name {resource ?? "all"}-{name}{Flag("--resource", resource)}{Flag("--environment", environment)} --action {name}').";
        }
        else if (permission == Permission.Admin)
        {
            message = $"'{caller.UserName}' is not an admin; only admins manage environments, variables, users, groups and other people's keys. Ask an admin.";
        }
        else
        {
            var owners = resource is null ? [] : OwnersOf(resource);
            var ask = owners.Count == 0 ? "an admin" : $"an owner of the resource ({string.Join(", ", owners)}) or an admin";
            // 'read' is not a permission one grants: any grant gives it, 'use' being the least.
            var grantable = permission == Permission.Read ? "use" : name;
            message = $"'{caller.UserName}' lacks the '{name}' permission{on}{inEnv}. Ask {ask} to grant it " +
                      $"('keyway permission grant {resource ?? "RESOURCE"} --user {caller.UserName} --permission {grantable}{Flag("--environment", environment)}').";
        }

        throw new AccessDeniedException(message, resource, environment);
    }

    /// <summary>A CLI flag for a suggested command, left out when the value is every one ('*') or none.</summary>
    private static string Flag(string flag, string? value) =>
        value is null or GrantStore.Any ? "" : $" {flag} {(value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') ? value : "\"" + value + "\"")}";

    /// <summary>Who owns a resource (user names and group names), for messages.</summary>
    public IReadOnlyList<string> OwnersOf(string resource) =>
        _snapshot.ByResource.TryGetValue(resource, out var grants) ? grants.Owners : [];

    private static string Describe(KeyScope scope)
    {
        var parts = new List<string>();
        if (scope.Resources is not null)
        {
            parts.Add("resources: " + string.Join(", ", scope.Resources));
        }

        if (scope.Environments is not null)
        {
            parts.Add("environments: " + string.Join(", ", scope.Environments));
        }

        if (scope.Actions is not null)
        {
            parts.Add("actions: " + string.Join(", ", scope.Actions));
        }

        return string.Join("; ", parts);
    }

    private readonly record struct Entry(int Level, string Environment);

    private sealed class ResourceGrants(
        FrozenDictionary<string, Entry[]> users, FrozenDictionary<string, Entry[]> groups, Entry[] everyone, IReadOnlyList<string> owners)
    {
        public FrozenDictionary<string, Entry[]> Users { get; } = users;

        public FrozenDictionary<string, Entry[]> Groups { get; } = groups;

        /// <summary>What every user holds (grants to <see cref="PrincipalKinds.Everyone"/>); usually none.</summary>
        public Entry[] Everyone { get; } = everyone;

        public IReadOnlyList<string> Owners { get; } = owners;
    }

    private sealed class Snapshot(FrozenDictionary<string, ResourceGrants> byResource)
    {
        public static readonly Snapshot Empty = new(FrozenDictionary<string, ResourceGrants>.Empty);

        public FrozenDictionary<string, ResourceGrants> ByResource { get; } = byResource;

        public static Snapshot Build(IEnumerable<GrantInfo> grants) => new(grants
            .GroupBy(g => g.Resource, StringComparer.Ordinal)
            .ToFrozenDictionary(
                r => r.Key,
                r => new ResourceGrants(
                    Index(r, PrincipalKinds.User),
                    Index(r, PrincipalKinds.Group),
                    [.. r.Where(g => g.PrincipalKind == PrincipalKinds.Everyone).Select(ToEntry)],
                    r.Where(g => g.Permission == "own")
                        .Select(g => g.PrincipalKind == PrincipalKinds.Group ? $"group {g.PrincipalName}" : g.PrincipalName)
                        .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray()),
                StringComparer.Ordinal));

        private static FrozenDictionary<string, Entry[]> Index(IEnumerable<GrantInfo> grants, string kind) => grants
            .Where(g => g.PrincipalKind == kind)
            .GroupBy(g => g.Principal, StringComparer.Ordinal)
            .ToFrozenDictionary(
                p => p.Key,
                p => p.Select(ToEntry).ToArray(),
                StringComparer.Ordinal);

        private static Entry ToEntry(GrantInfo g) => new((int)(ParseAction(g.Permission) ?? Permission.Read), g.Environment);
    }

    private static partial class Log
    {
        [LoggerMessage(40, LogLevel.Warning, "Reloading grants failed ({ExceptionType}, attempt {Attempt}); retrying")]
        public static partial void ReloadFailed(ILogger logger, string exceptionType, int attempt);
    }
}

/// <summary>Where an endpoint's environment comes from, for the route listing and the matrix test.</summary>
internal enum EnvironmentSource
{
    /// <summary>No environment, or <c>?environment=</c> (read by <see cref="AccessFilter"/>).</summary>
    Query,

    /// <summary>The JSON body's <c>environment</c>: the handler demands again once it is read.</summary>
    Body,

    /// <summary>The <c>X-Keyway-Environment</c> header (the proxy): the handler demands.</summary>
    Header,

    /// <summary>
    /// None: the endpoint acts on what every environment shares (a resource's configuration, its
    /// permissions). <c>?environment=</c> is ignored, so edit and own are demanded in every environment
    /// and a key scoped to some environments cannot act there by naming one of them.
    /// </summary>
    None,
}

/// <summary>
/// Endpoint metadata: the permission an endpoint needs, and which route value names the resource.
/// When <see cref="ResourceRouteValue"/> is null for a resource permission, the resource is not in
/// the route (a saved query's, or a list), and the handler demands or filters per resource.
/// <see cref="CreatesResource"/>: a member may call it on a resource that does not exist yet (creating it, and owning it).
/// </summary>
internal sealed record AccessRequirement(Permission Permission, string? ResourceRouteValue)
{
    public EnvironmentSource Environment { get; init; } = EnvironmentSource.Query;

    public bool CreatesResource { get; init; }

    /// <summary>A scope action outside the permission ladder that also lets a key through (<see cref="AccessPolicy.ConfigRead"/>).</summary>
    public string? ScopeAction { get; init; }
}

/// <summary>Endpoint metadata: open to callers who are not signed in (sign-in itself, and nothing else).</summary>
internal sealed record AnonymousAccess : IAllowAnonymous;

/// <summary>Enforces <see cref="AccessRequirement"/> on every endpoint of a route group.</summary>
internal sealed class AccessFilter(AccessPolicy policy) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var metadata = http.GetEndpoint()?.Metadata;
        if (metadata?.GetMetadata<IAllowAnonymous>() is not null)
        {
            // Sign-in and similar endpoints: no caller yet, by design.
            return await next(context);
        }

        var caller = Caller.From(http.User);
        if (caller is null)
        {
            return Problems.Unauthorized("Send an API key as 'Authorization: Bearer <key>' (create one with 'keyway key create').");
        }

        var requirement = metadata?.GetMetadata<AccessRequirement>()
            ?? throw new InvalidOperationException($"Endpoint {http.GetEndpoint()?.DisplayName} declares no access requirement.");
        var resource = requirement.ResourceRouteValue is { } key ? http.Request.RouteValues[key] as string : null;
        var environment = requirement.Environment == EnvironmentSource.Query ? http.Request.Query["environment"].FirstOrDefault() : null;
        if (requirement.CreatesResource && resource is not null && !policy.Allows(caller, requirement.Permission, resource, environment))
        {
            // Creating a resource needs the build right, not a grant (its creator then owns it: a key's scope
            // must allow own); the handler checks the right, and creates only what still does not exist.
            if (await http.RequestServices.GetRequiredService<Resources.ResourceService>().GetAsync(resource, http.RequestAborted) is null &&
                AccessPolicy.ScopeAllows(caller.Scope, Permission.Own, resource, environment))
            {
                return await next(context);
            }
        }

        // A key whose scope names the endpoint's own scope action passes the scope check; its owner still needs the permission.
        policy.Demand(requirement.ScopeAction is { } action && AccessPolicy.ScopeNames(caller.Scope, action) ? caller with { Scope = null } : caller,
            requirement.Permission, resource, environment);
        return await next(context);
    }
}

internal static class AccessEndpointExtensions
{
    /// <summary>Declares the permission an endpoint needs. An endpoint without one fails closed.</summary>
    public static TBuilder Requires<TBuilder>(
        this TBuilder builder, Permission permission, string? resourceRouteValue = null,
        EnvironmentSource environment = EnvironmentSource.Query, bool createsResource = false, string? scopeAction = null)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AccessRequirement(permission, resourceRouteValue) { Environment = environment, CreatesResource = createsResource, ScopeAction = scopeAction });

    /// <summary>Declares an endpoint open to anonymous callers. Only sign-in uses it.</summary>
    public static TBuilder Anonymous<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AnonymousAccess());
}

/// <summary>A 403 <c>forbidden</c> from <see cref="AccessPolicy.Demand"/>: what was refused where, for the audit log's denial.</summary>
internal sealed class AccessDeniedException(string message, string? resource, string? environment)
    : KeywayException(StatusCodes.Status403Forbidden, "forbidden", message)
{
    public string? Resource { get; } = resource;

    public string? Environment { get; } = environment;
}
