using System.Text.Json;
using Cronos;
using Keyway.Api;

namespace Keyway.Schedules;

/// <summary>
/// A schedule as it is written (<c>PUT /api/v1/schedules/{name}</c>, <c>keyway schedule put -f</c>):
/// when (<see cref="Cron"/> in <see cref="TimeZone"/>), what (<see cref="Action"/>) and on what
/// (<see cref="Resource"/>, <see cref="Query"/> or <see cref="Variable"/>, in <see cref="Environment"/>).
/// </summary>
internal sealed record ScheduleDefinition
{
    /// <summary>5 fields (minute first) or 6 (second first), as Cronos reads them; <c>@daily</c> and the like too.</summary>
    public string? Cron { get; init; }

    /// <summary>An IANA time zone (<c>Europe/Madrid</c>); UTC when absent. Cronos handles the DST gaps and overlaps.</summary>
    public string? TimeZone { get; init; }

    /// <summary><c>refresh</c>, <c>rotate</c>, <c>run</c> or <c>verify</c>.</summary>
    public string? Action { get; init; }

    /// <summary>The resource whose credential <c>refresh</c> and <c>rotate</c> act on.</summary>
    public string? Resource { get; init; }

    /// <summary>The saved query <c>run</c> runs.</summary>
    public string? Query { get; init; }

    /// <summary>A secret variable to <c>rotate</c> with its rotation flow (instead of a resource's credential).</summary>
    public string? Variable { get; init; }

    /// <summary>Where <c>refresh</c>, <c>rotate</c> and <c>run</c> act; production when absent.</summary>
    public string? Environment { get; init; }

    /// <summary>The inputs of a <c>run</c>, as the saved query's <c>/run</c> takes them.</summary>
    public JsonElement? Inputs { get; init; }

    public bool? Enabled { get; init; }

    /// <summary>Attempts per run, the first included (1–10; default 3).</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>The wait before the first retry, doubled before each next one (0.1–3600 s; default 2).</summary>
    public double? RetryBackoffSeconds { get; init; }

    /// <summary>After downtime: <c>fireOnce</c> (default: one catch-up run for what was missed in the last 24 h) or <c>skip</c>.</summary>
    public string? Misfire { get; init; }

    public string? Description { get; init; }
}

/// <summary>What a schedule does.</summary>
internal static class ScheduleActions
{
    public const string Refresh = "refresh";
    public const string Rotate = "rotate";
    public const string Run = "run";
    public const string Verify = "verify";
}

/// <summary>What happens to occurrences missed while no replica ran (docs/operations.md, "Schedules").</summary>
internal static class MisfirePolicies
{
    public const string FireOnce = "fireOnce";
    public const string Skip = "skip";
}

/// <summary>A schedule validated and parsed once: its cron, zone and settings.</summary>
internal sealed record CompiledSchedule(
    string Name, ScheduleDefinition Definition, CronExpression Cron, TimeZoneInfo Zone, int MaxAttempts, TimeSpan RetryBackoff, string Misfire)
{
    public const int DefaultMaxAttempts = 3;
    public static readonly TimeSpan DefaultRetryBackoff = TimeSpan.FromSeconds(2);

    public string Action => Definition.Action!;

    public bool Enabled => Definition.Enabled ?? true;

    public string Environment => Definition.Environment ?? Environments.VariableService.Production;

    /// <summary>What the schedule acts on, for history, audit and alerts: never a value.</summary>
    public string Target => Action switch
    {
        ScheduleActions.Run => $"query:{Definition.Query}/{Environment}",
        ScheduleActions.Verify => "audit",
        ScheduleActions.Rotate when Definition.Variable is not null => $"variable:{Definition.Variable}/{Environment}",
        _ => $"resource:{Definition.Resource}/{Environment}",
    };

    /// <summary>The first occurrence strictly after <paramref name="after"/>, in the schedule's zone.</summary>
    public DateTimeOffset? NextAfter(DateTimeOffset after) => Cron.GetNextOccurrence(after, Zone);

    /// <summary>The wait before attempt <paramref name="attempt"/> (2, 3, …): the backoff doubled each time, capped at an hour.</summary>
    public TimeSpan BackoffBefore(int attempt) =>
        TimeSpan.FromTicks(Math.Min(TimeSpan.FromHours(1).Ticks, RetryBackoff.Ticks * (1L << Math.Clamp(attempt - 2, 0, 20))));

    /// <summary>
    /// Checks what can be checked without the store (names, cron, zone, numbers) and parses it.
    /// Every problem is one field error; the first throws them all at once as <c>400 invalid_config</c>.
    /// </summary>
    public static CompiledSchedule Compile(string name, ScheduleDefinition definition)
    {
        var errors = new List<FieldError>();
        if (Names.CheckName("schedule", name) is { } nameError)
        {
            errors.Add(new FieldError("name", nameError));
        }

        CronExpression? cron = null;
        if (string.IsNullOrWhiteSpace(definition.Cron))
        {
            errors.Add(new FieldError("cron", "Set cron: 5 fields ('0 3 * * *': 03:00 every day) or 6 with seconds first ('*/30 * * * * *')."));
        }
        else
        {
            var fields = definition.Cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
            var format = fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard;
            if (!definition.Cron.StartsWith('@') && fields is not (5 or 6))
            {
                errors.Add(new FieldError("cron", $"'{definition.Cron}' has {fields} fields; a cron has 5 (minute hour day month weekday) or 6 (second first)."));
            }
            else if (!CronExpression.TryParse(definition.Cron, format, out cron))
            {
                errors.Add(new FieldError("cron", $"'{definition.Cron}' is not a valid cron expression. Example: '0 3 * * 1-5' (03:00 on weekdays)."));
            }
        }

        var zone = TimeZoneInfo.Utc;
        if (definition.TimeZone is { } id && !TimeZoneInfo.TryFindSystemTimeZoneById(id, out zone!))
        {
            errors.Add(new FieldError("timeZone", $"'{id}' is not a known time zone. Use an IANA name such as 'Europe/Madrid' or 'America/New_York'."));
            zone = TimeZoneInfo.Utc;
        }

        CheckTarget(definition, errors);
        if (definition.MaxAttempts is < 1 or > 10)
        {
            errors.Add(new FieldError("maxAttempts", "maxAttempts is between 1 (no retry) and 10."));
        }

        if (definition.RetryBackoffSeconds is < 0.1 or > 3600 || definition.RetryBackoffSeconds is double.NaN)
        {
            errors.Add(new FieldError("retryBackoffSeconds", "retryBackoffSeconds is between 0.1 and 3600."));
        }

        if (definition.Misfire is not (null or MisfirePolicies.FireOnce or MisfirePolicies.Skip))
        {
            errors.Add(new FieldError("misfire", $"misfire is '{MisfirePolicies.FireOnce}' (one catch-up run after downtime, the default) or '{MisfirePolicies.Skip}'."));
        }

        if (errors.Count > 0)
        {
            throw Invalid(name, errors);
        }

        return new CompiledSchedule(name, definition, cron!, zone, definition.MaxAttempts ?? DefaultMaxAttempts,
            definition.RetryBackoffSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultRetryBackoff, definition.Misfire ?? MisfirePolicies.FireOnce);
    }

    public static KeywayException Invalid(string name, IReadOnlyList<FieldError> errors) =>
        new(StatusCodes.Status400BadRequest, "invalid_config",
            $"Schedule '{name}' is not valid: {string.Join("; ", errors.Select(e => $"{e.Field}: {e.Message}"))}",
            new Dictionary<string, object?> { ["errors"] = errors });

    private static void CheckTarget(ScheduleDefinition definition, List<FieldError> errors)
    {
        if (definition.Environment is { } environment && Names.CheckName("environment", environment) is { } envError)
        {
            errors.Add(new FieldError("environment", envError));
        }

        switch (definition.Action)
        {
            case ScheduleActions.Refresh:
                Require(definition.Resource, "resource", "refresh acts on a resource's credential: set resource (and environment, production by default).", errors);
                Forbid(definition.Query, "query", "refresh", errors);
                Forbid(definition.Variable, "variable", "refresh", errors);
                break;
            case ScheduleActions.Rotate:
                if (definition.Variable is not null)
                {
                    Forbid(definition.Resource, "resource", "rotate of a variable (set resource or variable, not both)", errors);
                    if (Names.CheckVariable(definition.Variable) is { } variableError)
                    {
                        errors.Add(new FieldError("variable", variableError));
                    }
                }
                else
                {
                    Require(definition.Resource, "resource", "rotate acts on a resource's credential or, with a rotation flow, on a secret variable: set resource or variable (and environment, production by default).", errors);
                }

                Forbid(definition.Query, "query", "rotate", errors);
                break;
            case ScheduleActions.Run:
                Require(definition.Query, "query", "run runs a saved query: set query (and environment, production by default; inputs if it takes any).", errors);
                Forbid(definition.Resource, "resource", "run (the query names its resource)", errors);
                Forbid(definition.Variable, "variable", "run", errors);
                break;
            case ScheduleActions.Verify:
                Forbid(definition.Resource, "resource", "verify (it checks the whole audit chain)", errors);
                Forbid(definition.Query, "query", "verify", errors);
                Forbid(definition.Variable, "variable", "verify", errors);
                Forbid(definition.Environment, "environment", "verify", errors);
                break;
            default:
                errors.Add(new FieldError("action", $"action is one of refresh, rotate, run, verify{(definition.Action is null ? "" : $", not '{definition.Action}'")}."));
                break;
        }

        if (definition.Action != ScheduleActions.Run && definition.Inputs is not null)
        {
            errors.Add(new FieldError("inputs", "Only a 'run' schedule takes inputs."));
        }
    }

    private static void Require(string? value, string field, string message, List<FieldError> errors)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add(new FieldError(field, message));
        }
    }

    private static void Forbid(string? value, string field, string action, List<FieldError> errors)
    {
        if (value is not null)
        {
            errors.Add(new FieldError(field, $"{field} does not apply to {action}; remove it."));
        }
    }
}
